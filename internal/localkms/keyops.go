package localkms

import (
	"crypto/rand"
	"fmt"

	"github.com/tmkms-nitro/tmkms-nitro/internal/kmspolicy"
)

// operation returns the handler of a KMS operation. Each handler gets the
// authenticated principal and the raw JSON body.
func operation(name string) (func(*Server, string, []byte) (any, error), bool) {
	switch name {
	case "CreateKey":
		return (*Server).createKey, true
	case "DescribeKey":
		return (*Server).describeKey, true
	case "GetKeyPolicy":
		return (*Server).getKeyPolicy, true
	case "PutKeyPolicy":
		return (*Server).putKeyPolicy, true
	case "Encrypt":
		return (*Server).encrypt, true
	case "Decrypt":
		return (*Server).decrypt, true
	case "GenerateDataKey":
		return (*Server).generateDataKey, true
	case "GenerateRandom":
		return (*Server).generateRandom, true
	}
	return nil, false
}

type keyMetadata struct {
	AWSAccountId          string
	KeyId                 string
	Arn                   string
	CreationDate          float64
	Enabled               bool
	Description           string
	KeyUsage              string
	KeyState              string
	Origin                string
	KeyManager            string
	CustomerMasterKeySpec string
	KeySpec               string
	EncryptionAlgorithms  []string
	MultiRegion           bool
}

func (s *Server) metadata(k *key) keyMetadata {
	return keyMetadata{
		AWSAccountId: s.cfg.AccountID, KeyId: k.KeyID, Arn: k.ARN,
		CreationDate: float64(k.Created.UnixMilli()) / 1000, Enabled: true, Description: k.Description,
		KeyUsage: "ENCRYPT_DECRYPT", KeyState: "Enabled", Origin: "AWS_KMS", KeyManager: "CUSTOMER",
		CustomerMasterKeySpec: "SYMMETRIC_DEFAULT", KeySpec: "SYMMETRIC_DEFAULT",
		EncryptionAlgorithms: []string{"SYMMETRIC_DEFAULT"},
	}
}

func (s *Server) createKey(principal string, body []byte) (any, error) {
	var in struct {
		Policy, Description                      *string
		KeyUsage, KeySpec, CustomerMasterKeySpec string
		Origin                                   string
		BypassPolicyLockoutSafetyCheck           bool
	}
	if err := decodeInput(body, &in); err != nil {
		return nil, err
	}
	if !oneOf(in.KeyUsage, "", "ENCRYPT_DECRYPT") || !oneOf(in.KeySpec, "", "SYMMETRIC_DEFAULT") ||
		!oneOf(in.CustomerMasterKeySpec, "", "SYMMETRIC_DEFAULT") || !oneOf(in.Origin, "", "AWS_KMS") {
		return nil, errUnsupported("The local KMS only creates SYMMETRIC_DEFAULT ENCRYPT_DECRYPT keys with origin AWS_KMS.")
	}
	doc := s.defaultPolicy()
	if in.Policy != nil {
		doc = *in.Policy
	}
	policy, err := s.checkNewPolicy(principal, doc, in.BypassPolicyLockoutSafetyCheck)
	if err != nil {
		return nil, err
	}
	k, err := s.newKey(policy, doc, in.Description)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.saveKey(k); err != nil {
		return nil, err
	}
	s.keys[k.KeyID] = k
	return struct{ KeyMetadata keyMetadata }{s.metadata(k)}, nil
}

func (s *Server) newKey(policy kmspolicy.Policy, doc string, desc *string) (*key, error) {
	id, err := newKeyID()
	if err != nil {
		return nil, err
	}
	material := make([]byte, 32)
	if _, err := rand.Read(material); err != nil {
		return nil, fmt.Errorf("localkms: failed to generate key material: %w", err)
	}
	k := &key{keyRecord: keyRecord{KeyID: id, ARN: s.keyARN(id), Created: s.cfg.Now().UTC(), Material: material, Policy: doc}, policy: policy}
	if desc != nil {
		k.Description = *desc
	}
	return k, nil
}

// defaultPolicy is the policy AWS gives a key created without one: the
// account's IAM policies decide.
func (s *Server) defaultPolicy() string {
	return fmt.Sprintf(`{"Version":"2012-10-17","Id":"key-default-1","Statement":[{"Sid":"Enable IAM User Permissions",`+
		`"Effect":"Allow","Principal":{"AWS":"arn:%s:iam::%s:root"},"Action":"kms:*","Resource":"*"}]}`,
		s.cfg.Partition, s.cfg.AccountID)
}

// checkNewPolicy parses a policy and, unless bypass, applies AWS's lockout
// safety check: the caller must still be allowed to change the policy.
func (s *Server) checkNewPolicy(principal, doc string, bypass bool) (kmspolicy.Policy, error) {
	p, err := parsePolicy(doc)
	if err != nil || bypass {
		return p, err
	}
	d, err := kmspolicy.Evaluate(p, kmspolicy.Request{Principal: principal, Action: "kms:PutKeyPolicy"})
	if err != nil || !d.Allowed() {
		return kmspolicy.Policy{}, errMalformedPolicy("The new key policy will not allow you to update the key policy in the future (%s).", d.Reason)
	}
	return p, nil
}

func (s *Server) describeKey(principal string, body []byte) (any, error) {
	var in struct {
		KeyId       string
		GrantTokens []string
	}
	if err := decodeInput(body, &in); err != nil {
		return nil, err
	}
	k, err := s.lookup(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(principal, "kms:DescribeKey", k, nil, nil); err != nil {
		return nil, err
	}
	return struct{ KeyMetadata keyMetadata }{s.metadata(k)}, nil
}

func (s *Server) getKeyPolicy(principal string, body []byte) (any, error) {
	var in struct{ KeyId, PolicyName string }
	if err := decodeInput(body, &in); err != nil {
		return nil, err
	}
	if !oneOf(in.PolicyName, "", "default") {
		return nil, errNotFound("Policy %q does not exist; the only key policy is \"default\".", in.PolicyName)
	}
	k, err := s.lookup(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(principal, "kms:GetKeyPolicy", k, nil, nil); err != nil {
		return nil, err
	}
	return struct{ Policy, PolicyName string }{k.Policy, "default"}, nil
}

func (s *Server) putKeyPolicy(principal string, body []byte) (any, error) {
	var in struct {
		KeyId, Policy, PolicyName      string
		BypassPolicyLockoutSafetyCheck bool
	}
	if err := decodeInput(body, &in); err != nil {
		return nil, err
	}
	if !oneOf(in.PolicyName, "", "default") {
		return nil, errValidation("PolicyName must be \"default\".")
	}
	k, err := s.lookup(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(principal, "kms:PutKeyPolicy", k, nil, nil); err != nil {
		return nil, err
	}
	policy, err := s.checkNewPolicy(principal, in.Policy, in.BypassPolicyLockoutSafetyCheck)
	if err != nil {
		return nil, err
	}
	next := &key{keyRecord: k.keyRecord, policy: policy}
	next.Policy = in.Policy
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.saveKey(next); err != nil {
		return nil, err
	}
	s.keys[next.KeyID] = next
	return struct{}{}, nil
}

func oneOf(v string, allowed ...string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}
