// Package kmspolicy writes and checks the AWS KMS key policy that confines
// the validator key to the enclave: Seed builds it from an operator's
// parameters, and Evaluate answers "would KMS allow this request?" for the
// subset of the IAM policy language such policies use, so that a policy can
// be tested before it is attached and the local KMS can enforce the same
// rules.
//
// The policy assumes the parent instance may be compromised: whoever owns it
// holds the instance role's credentials. So the role may only Decrypt and
// GenerateDataKey with an attestation of the pinned enclave, which gets the
// plaintext encrypted to its attested key, and is explicitly denied Encrypt
// and the other ways to choose a key's plaintext ("key planting"); an
// existing key is imported with an administrator's credentials instead.
//
// It trusts the policy document only to be data: anything it does not
// understand (an unknown element, a duplicated key, an unsupported operator
// or principal type, a policy variable) is an error, never a silent match or
// mismatch.
// Evaluate models the account root principal as "every principal of the
// account", i.e. it assumes IAM policies in that account may grant anything;
// that over-approximates what AWS allows, which is the safe direction for a
// checker that must never report a key as sealed when it is not.
//
// It must never return a Decision that allows access together with an
// error, and never treat a policy it cannot fully evaluate as allowing.
package kmspolicy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Version is the policy language version Seed writes.
const Version = "2012-10-17"

// Effect is a statement's "Effect".
type Effect string

// The two effects.
const (
	Allow Effect = "Allow"
	Deny  Effect = "Deny"
)

// Policy is a key policy document.
type Policy struct {
	Version   string      `json:"Version"`
	ID        string      `json:"Id,omitempty"`
	Statement []Statement `json:"Statement"`
}

// Statement is one entry of a policy's "Statement". NotAction, NotPrincipal
// and NotResource are not supported: Parse rejects them.
type Statement struct {
	Sid       string    `json:"Sid,omitempty"`
	Effect    Effect    `json:"Effect"`
	Principal Principal `json:"Principal,omitzero"`
	Action    Strings   `json:"Action"`
	Resource  Strings   `json:"Resource,omitzero"`
	Condition Condition `json:"Condition,omitempty"`
}

// Condition maps a condition operator ("StringEqualsIgnoreCase") to the
// condition keys it tests and the values each key may take.
type Condition map[string]map[string]Strings

// Strings is a policy value that AWS writes either as a single string or as
// an array of strings. It remembers which, so a document round-trips in the
// shape it was written.
type Strings struct {
	Values []string
	Array  bool // encode as an array even when there is one value
}

// One is a value written as a single JSON string.
func One(s string) Strings { return Strings{Values: []string{s}} }

// List is a value written as a JSON array.
func List(s ...string) Strings { return Strings{Values: s, Array: true} }

// IsZero reports whether s holds nothing, so `omitzero` drops it.
func (s Strings) IsZero() bool { return len(s.Values) == 0 && !s.Array }

// MarshalJSON writes a single string unless s is an array or holds other
// than one value.
func (s Strings) MarshalJSON() ([]byte, error) {
	if !s.Array && len(s.Values) == 1 {
		return json.Marshal(s.Values[0])
	}
	if s.Values == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(s.Values)
}

// UnmarshalJSON accepts a string or an array of strings, nothing else:
// AWS rejects numbers, objects and nulls in these places and so do we.
func (s *Strings) UnmarshalJSON(data []byte) error {
	var one string
	if err := json.Unmarshal(data, &one); err == nil && !bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		*s = One(one)
		return nil
	}
	var many []string
	if err := json.Unmarshal(data, &many); err != nil || many == nil {
		return fmt.Errorf("want a string or an array of strings, got %s", abbreviate(data))
	}
	*s = List(many...)
	return nil
}

// Principal is a statement's "Principal": "*" or an object naming
// principals by type. Evaluate matches only AWS principals; the other types
// exist so that real key policies (which grant to services) still parse.
type Principal struct {
	Wildcard      bool    // "Principal": "*"
	AWS           Strings `json:"AWS,omitzero"`
	Service       Strings `json:"Service,omitzero"`
	Federated     Strings `json:"Federated,omitzero"`
	CanonicalUser Strings `json:"CanonicalUser,omitzero"`
}

// IsZero reports whether no principal is set.
func (p Principal) IsZero() bool {
	return !p.Wildcard && p.AWS.IsZero() && p.Service.IsZero() && p.Federated.IsZero() && p.CanonicalUser.IsZero()
}

// principalJSON is Principal without its methods, for the object form.
type principalJSON struct {
	AWS           Strings `json:"AWS,omitzero"`
	Service       Strings `json:"Service,omitzero"`
	Federated     Strings `json:"Federated,omitzero"`
	CanonicalUser Strings `json:"CanonicalUser,omitzero"`
}

// MarshalJSON writes "*" for the wildcard, an object otherwise.
func (p Principal) MarshalJSON() ([]byte, error) {
	if p.Wildcard {
		if !(Principal{AWS: p.AWS, Service: p.Service, Federated: p.Federated, CanonicalUser: p.CanonicalUser}).IsZero() {
			return nil, errors.New(`kmspolicy: principal is both "*" and a list`)
		}
		return []byte(`"*"`), nil
	}
	return json.Marshal(principalJSON{p.AWS, p.Service, p.Federated, p.CanonicalUser})
}

// UnmarshalJSON accepts "*" or an object of known principal types.
func (p *Principal) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		if s != "*" {
			return fmt.Errorf(`principal string must be "*", got %q`, s)
		}
		*p = Principal{Wildcard: true}
		return nil
	}
	var j principalJSON
	if err := strictUnmarshal(data, &j); err != nil {
		return fmt.Errorf("invalid principal: %w", err)
	}
	*p = Principal{AWS: j.AWS, Service: j.Service, Federated: j.Federated, CanonicalUser: j.CanonicalUser}
	return nil
}

// UnmarshalJSON decodes strictly: an unknown element anywhere in the policy
// (NotAction, a misspelt "Conditions") or a key given twice in one object is
// an error, because ignoring either could turn a restriction into a grant.
// "Statement" may be one object or an array.
func (p *Policy) UnmarshalJSON(data []byte) error {
	if err := checkDuplicateKeys(data); err != nil {
		return fmt.Errorf("kmspolicy: invalid policy: %w", err)
	}
	var raw struct {
		Version   string          `json:"Version"`
		ID        string          `json:"Id"`
		Statement json.RawMessage `json:"Statement"`
	}
	if err := strictUnmarshal(data, &raw); err != nil {
		return fmt.Errorf("kmspolicy: invalid policy: %w", err)
	}
	var stmts []Statement
	trimmed := bytes.TrimSpace(raw.Statement)
	switch {
	case len(trimmed) > 0 && trimmed[0] == '{':
		var one Statement
		if err := strictUnmarshal(trimmed, &one); err != nil {
			return fmt.Errorf("kmspolicy: invalid statement: %w", err)
		}
		stmts = []Statement{one}
	default:
		if err := strictUnmarshal(trimmed, &stmts); err != nil {
			return fmt.Errorf("kmspolicy: invalid statement list: %w", err)
		}
	}
	for i := range stmts {
		// "Condition": {} is no condition, as its absence is: one form,
		// so that a policy reads back as it was written.
		if len(stmts[i].Condition) == 0 {
			stmts[i].Condition = nil
		}
	}
	*p = Policy{Version: raw.Version, ID: raw.ID, Statement: stmts}
	return nil
}

// Parse decodes a key policy document and validates it.
func Parse(data []byte) (Policy, error) {
	var p Policy
	// Called directly rather than through json.Unmarshal, whose own syntax
	// errors would arrive without this package's prefix.
	if err := p.UnmarshalJSON(data); err != nil {
		return Policy{}, err
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// Marshal encodes p as indented JSON, the form to hand to
// `aws kms put-key-policy --policy file://...`.
func Marshal(p Policy) ([]byte, error) {
	out, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("kmspolicy: failed to encode policy: %w", err)
	}
	return append(out, '\n'), nil
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after JSON value")
	}
	return nil
}

func abbreviate(data []byte) string {
	const limit = 40
	if len(data) > limit {
		return string(data[:limit]) + "..."
	}
	return string(data)
}
