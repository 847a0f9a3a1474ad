package enclaveproto

import (
	"strings"

	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
)

func (c *Configure) validate() error {
	switch {
	case c.ChainID == "" || len(c.ChainID) > MaxChainID:
		return invalid("chain_id must be 1 to %d bytes, got %d", MaxChainID, len(c.ChainID))
	case len(c.Addresses) == 0 || len(c.Addresses) > MaxAddresses:
		return invalid("addresses must list 1 to %d nodes, got %d", MaxAddresses, len(c.Addresses))
	case c.MaxHeight < 0:
		return invalid("max_height %d is negative", c.MaxHeight)
	case len(c.SealedConsensusKey) == 0:
		return invalid("sealed_consensus_key is empty")
	case len(c.HAInstance) > MaxInstance:
		return invalid("ha_instance is %d bytes, at most %d allowed", len(c.HAInstance), MaxInstance)
	case len(c.SealedAnchor) > maxSealedFile:
		return invalid("sealed_anchor is %d bytes, at most %d allowed", len(c.SealedAnchor), maxSealedFile)
	}
	return c.Credentials.validate()
}

// maxSealedFile bounds a sealed file (sealedkey.MaxFileSize).
const maxSealedFile = 16 << 10

func (b *Binding) validate() error {
	if len(b.ChainIDs) > MaxChainIDs {
		return invalid("%d chain ids, at most %d allowed", len(b.ChainIDs), MaxChainIDs)
	}
	for _, c := range b.ChainIDs {
		if c == "" || len(c) > MaxChainID {
			return invalid("chain id must be 1 to %d bytes, got %d", MaxChainID, len(c))
		}
	}
	if len(b.Anchor) != 0 && len(b.Anchor) != 64 || strings.Trim(b.Anchor, "0123456789abcdef") != "" {
		return invalid("anchor must be 64 lower-case hex digits")
	}
	if len(b.Nonce) > MaxNonce {
		return invalid("nonce is %d bytes, at most %d allowed", len(b.Nonce), MaxNonce)
	}
	return nil
}

func (a *SealAnchor) validate() error {
	switch {
	case len(a.Endpoints) == 0 || len(a.Endpoints) > 16:
		return invalid("%d endpoints, want 1 to 16", len(a.Endpoints))
	case len(a.CA) == 0 || len(a.Cert) == 0 || len(a.Key) == 0:
		return invalid("the anchor needs a CA, a client certificate and its key")
	case a.Prefix == "":
		return invalid("prefix is empty")
	case len(a.Nonce) > MaxNonce:
		return invalid("nonce is %d bytes, at most %d allowed", len(a.Nonce), MaxNonce)
	}
	return a.Credentials.validate()
}

func (c *Configured) validate() error {
	if _, err := signer.NewPubKey(keyType(c.ConsensusKeyType), c.ConsensusPubKey); err != nil {
		return invalid("consensus_pub_key: %v", err)
	}
	if n := len(c.IdentityPubKey); n != 0 && n != PubKeySize {
		return invalid("identity_pub_key is %d bytes, want 0 or %d", n, PubKeySize)
	}
	return nil
}

func (g *GenerateKey) validate() error {
	if err := checkPurpose(g.Purpose, g.Key()); err != nil {
		return err
	}
	if err := g.Binding.validate(); err != nil {
		return err
	}
	return g.Credentials.validate()
}

func (i *ImportKey) validate() error {
	if len(i.Seed) != SeedSize {
		return invalid("seed is %d bytes, want %d", len(i.Seed), SeedSize)
	}
	if err := checkPurpose(i.Purpose, i.Key()); err != nil {
		return err
	}
	if err := i.Binding.validate(); err != nil {
		return err
	}
	return i.Credentials.validate()
}

// checkPurpose checks a key's purpose and type: a SecretConnection
// identity is always ed25519.
func checkPurpose(p, keyType string) error {
	switch {
	case p != PurposeConsensus && p != PurposeIdentity:
		return invalid("purpose %q is neither %q nor %q", p, PurposeConsensus, PurposeIdentity)
	case signer.CheckKeyType(keyType) != nil:
		return invalid("%v", signer.CheckKeyType(keyType))
	case p == PurposeIdentity && keyType != signer.KeyTypeEd25519:
		return invalid("an identity key is ed25519, not %s", keyType)
	}
	return nil
}

func (g *GeneratedKey) validate() error {
	if len(g.SealedKey) == 0 {
		return invalid("sealed_key is empty")
	}
	if len(g.PubKey) == 0 { // an anchor
		return nil
	}
	if _, err := signer.NewPubKey(g.Key().Type, g.PubKey); err != nil {
		return invalid("pub_key: %v", err)
	}
	return nil
}

func (*Ack) validate() error      { return nil }
func (*StateAck) validate() error { return nil }

func (s *StateSnapshot) validate() error {
	if s.Missing && (len(s.Record) != 0 || s.Height != 0 || s.Round != 0 || s.Step != 0) {
		return invalid("state snapshot is marked missing but carries a record")
	}
	if !s.Missing && len(s.Record) == 0 {
		return invalid("state snapshot has no record and is not marked missing")
	}
	return checkHR(s.Height, s.Round)
}

func (p *PersistState) validate() error {
	if len(p.Record) == 0 {
		return invalid("state record is empty")
	}
	return checkHR(p.Height, p.Round)
}

func (c *CommitDecision) validate() error {
	if len(c.Record) == 0 {
		return invalid("decision record is empty")
	}
	return nil
}

func (c *CommitResult) validate() error {
	if c.Revision < 0 || c.Committed && (c.Revision == 0 || len(c.Current) != 0) || !c.Committed && len(c.Current) == 0 && c.Revision != 0 {
		return invalid("commit result with revision %d and a %d-byte record", c.Revision, len(c.Current))
	}
	return nil
}

func checkHR(h int64, r int32) error {
	if h < 0 || r < 0 {
		return invalid("negative height %d or round %d", h, r)
	}
	return nil
}

func (l *LogRecord) validate() error {
	if len(l.Attrs) > MaxLogAttrs {
		return invalid("log record has %d attributes, at most %d allowed", len(l.Attrs), MaxLogAttrs)
	}
	return checkTime("time", l.Time)
}

func (e *Error) validate() error {
	if e.Code == "" || len(e.Code) > maxErrCode {
		return invalid("error code is %d bytes, want 1 to %d", len(e.Code), maxErrCode)
	}
	if strings.Trim(e.Code, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		return invalid("error code %q has characters outside [a-z0-9-]", e.Code)
	}
	if len(e.Message) > maxErrText {
		return invalid("error message is %d bytes, at most %d allowed", len(e.Message), maxErrText)
	}
	return nil
}
