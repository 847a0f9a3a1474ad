package localkms

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/kmspolicy"
)

// maxPolicySize is AWS's limit on a key policy document.
const maxPolicySize = 32 << 10

// keyRecord is a key as stored in keys/<id>.json.
type keyRecord struct {
	KeyID       string    `json:"key_id"`
	ARN         string    `json:"arn"`
	Created     time.Time `json:"created"`
	Description string    `json:"description,omitempty"`
	Material    []byte    `json:"material"` // 32 bytes, AES-256-GCM key
	Policy      string    `json:"policy"`
}

// key is a loaded key: its record and its parsed policy.
type key struct {
	keyRecord
	policy kmspolicy.Policy
}

func newKeyID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("localkms: failed to generate key id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40 // UUID version 4, as KMS key IDs are
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

func isKeyID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case !('0' <= c && c <= '9' || 'a' <= c && c <= 'f'):
			return false
		}
	}
	return true
}

// parsePolicy checks a policy document as CreateKey and PutKeyPolicy do.
func parsePolicy(doc string) (kmspolicy.Policy, error) {
	if len(doc) > maxPolicySize {
		return kmspolicy.Policy{}, errMalformedPolicy("The key policy is larger than %d bytes.", maxPolicySize)
	}
	p, err := kmspolicy.Parse([]byte(doc))
	if err != nil {
		return kmspolicy.Policy{}, errMalformedPolicy("The key policy is not valid or not supported by the local KMS: %v", err)
	}
	return p, nil
}

func (s *Server) keyPath(id string) string { return filepath.Join(s.cfg.Dir, keysDir, id+".json") }

func (s *Server) saveKey(k *key) error { return writeJSON(s.keyPath(k.KeyID), k.keyRecord) }

// loadKeys reads every key in keys/, refusing to start on any file it cannot
// fully load: skipping one would make its ciphertexts silently undecryptable.
func (s *Server) loadKeys() (map[string]*key, error) {
	dir := filepath.Join(s.cfg.Dir, keysDir)
	if err := makePrivateDir(dir); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("localkms: failed to list %s: %w", dir, err)
	}
	keys := make(map[string]*key, len(entries))
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !isKeyID(id) {
			continue // atomicfile's temporary files, editor backups
		}
		k, err := s.loadKey(id)
		if err != nil {
			return nil, err
		}
		keys[id] = k
	}
	return keys, nil
}

func (s *Server) loadKey(id string) (*key, error) {
	path := s.keyPath(id)
	data, err := readPrivate(path)
	if err != nil {
		return nil, err
	}
	var rec keyRecord
	if err := strictJSON(data, &rec); err != nil {
		return nil, fmt.Errorf("localkms: failed to decode %s: %w", path, err)
	}
	if rec.KeyID != id || rec.ARN != s.keyARN(id) || len(rec.Material) != 32 {
		return nil, fmt.Errorf("localkms: %s does not hold key %s of this region and account", path, id)
	}
	p, err := kmspolicy.Parse([]byte(rec.Policy))
	if err != nil {
		return nil, fmt.Errorf("localkms: failed to parse the policy in %s: %w", path, err)
	}
	return &key{keyRecord: rec, policy: p}, nil
}

func (s *Server) keyARN(id string) string {
	return fmt.Sprintf("arn:%s:kms:%s:%s:key/%s", s.cfg.Partition, s.cfg.Region, s.cfg.AccountID, id)
}

// lookup resolves a KeyId parameter: a key ID or a key ARN of this region
// and account. Aliases are not supported.
func (s *Server) lookup(ref string) (*key, error) {
	if ref == "" {
		return nil, errValidation("1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null")
	}
	if strings.HasPrefix(ref, "alias/") {
		return nil, errUnsupported("The local KMS does not support aliases: use a key ID or key ARN, not %q.", ref)
	}
	id := ref
	if strings.HasPrefix(ref, "arn:") {
		prefix := s.keyARN("")
		rest, ok := strings.CutPrefix(ref, prefix)
		if !ok {
			return nil, errNotFound("Key '%s' does not exist", ref)
		}
		id = rest
	}
	s.mu.Lock()
	k, ok := s.keys[id]
	s.mu.Unlock()
	if !ok {
		return nil, errNotFound("Key '%s' does not exist", s.keyARN(id))
	}
	return k, nil
}
