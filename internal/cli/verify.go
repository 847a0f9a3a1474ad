package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/attestation"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
)

func runVerifyAttestation(_ context.Context, env *Env, args []string) error {
	fs := newFlags(env, "verify-attestation", "[--at RFC3339|unix-ms] [--root PEM] [--expect-* ...] FILE",
		"Verifies a Nitro Enclave attestation document (raw CBOR or base64, as `init` prints it) against the\n"+
			"AWS Nitro root, and prints its module id, PCRs, public key, nonce and user data, with the fields of\n"+
			"the enclave's key statement (public key, KMS key, origin, chains, anchor) when the user data is one.\n"+
			"Each --expect-* flag must match the document, or the command fails naming the field: check at least\n"+
			"--expect-kms-key, --expect-origin and --expect-nonce after init, so that a host which named another\n"+
			"KMS key, imported a key of its own or replayed an old document is caught. Exits non-zero on any failure.")
	at := fs.String("at", "", "verify as of this time (RFC 3339 or unix milliseconds) instead of now")
	root := fs.String("root", "", "PEM file of a root to trust instead of the AWS Nitro root (local mode)")
	var want expectations
	want.register(fs)
	if err := Parse(fs, args, 1); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return ErrUsage
	}
	doc, err := readDocument(fs.Arg(0))
	if err != nil {
		return err
	}
	var opts attestation.Options
	if *at != "" {
		if opts.CurrentTime, err = parseTime(*at); err != nil {
			return err
		}
	}
	if *root != "" {
		if opts.Roots, err = readCerts(*root); err != nil {
			return err
		}
	}
	d, err := attestation.Verify(doc, opts)
	if err != nil {
		if errors.Is(err, attestation.ErrExpired) && *at == "" {
			return WithHint(err, "documents are valid for about 3 hours; to check an old one, pass --at with its timestamp")
		}
		return err
	}
	// Nothing is printed for a document that fails an expectation: its
	// values are in the error, and a reader of the output alone must not
	// take it for a good one.
	if err := want.check(d); err != nil {
		return err
	}
	printDocument(env, d)
	if names := want.names(); len(names) > 0 {
		fmt.Fprintf(env.Stdout, "expected and matched: %s\n", strings.Join(names, ", "))
	}
	return nil
}

// Each --expect-* mismatch wraps one of these, so callers and tests can
// tell with errors.Is which field was wrong.
var (
	// errNoKeyStatement: an expectation reads the user data, and the
	// document has none or it is not the enclave's key statement.
	errNoKeyStatement   = errors.New("no key statement in the attestation document")
	errPubKeyMismatch   = errors.New("public key mismatch")
	errKMSKeyMismatch   = errors.New("KMS key mismatch")
	errOriginMismatch   = errors.New("origin mismatch")
	errNonceMismatch    = errors.New("nonce mismatch")
	errPCR0Mismatch     = errors.New("PCR0 mismatch")
	errChainIDsMismatch = errors.New("chain IDs mismatch")
	errAnchorMismatch   = errors.New("anchor mismatch")
)

// mismatchError names the field that differs from the operator's
// expectation, and both values.
type mismatchError struct {
	kind      error // one of the sentinels above
	field     string
	want, got string
}

func (e *mismatchError) Error() string {
	return fmt.Sprintf("%v: %s is %s, expected %s", e.kind, e.field, e.got, e.want)
}

func (e *mismatchError) Unwrap() error { return e.kind }

// failedExpectations is every mismatch of one document, on one line, as
// the command's errors are printed.
type failedExpectations []error

func (f failedExpectations) Error() string {
	if len(f) == 1 {
		return f[0].Error()
	}
	msgs := make([]string, len(f))
	for i, err := range f {
		msgs[i] = err.Error()
	}
	return fmt.Sprintf("%d expectations failed: %s", len(f), strings.Join(msgs, "; "))
}

func (f failedExpectations) Unwrap() []error { return f }

// keyStatement is the user data of the attestation document the enclave
// returns with a new or imported key: which key, sealed where, bound to
// what. A field absent from the document (one from an older enclave) is
// nil, and any expectation on it fails.
type keyStatement struct {
	PublicKey       *string   `json:"public_key"`        // lower-case hex of the raw public key
	KeyType         *string   `json:"key_type"`          // absent for ed25519
	KMSKeyID        *string   `json:"kms_key_id"`        // the KMS key ARN
	SealedKeySHA256 *string   `json:"sealed_key_sha256"` // hex SHA-256 of the sealed key file
	Origin          *string   `json:"origin"`            // "generated" or "imported"
	ChainIDs        *[]string `json:"chain_ids"`
	Anchor          *string   `json:"anchor"` // hex fingerprint, "" for none
}

// parseKeyStatement decodes user data as a key statement. It refuses
// unknown keys so that a document carrying something else is reported as
// such, not as a statement whose every field is absent.
func parseKeyStatement(userData []byte) (*keyStatement, error) {
	if len(userData) == 0 {
		return nil, fmt.Errorf("%w: the document has no user data", errNoKeyStatement)
	}
	notJSON := func(why any) error {
		return fmt.Errorf("%w: its user data is not the enclave's JSON key statement (%v)", errNoKeyStatement, why)
	}
	if t := bytes.TrimSpace(userData); len(t) == 0 || t[0] != '{' {
		return nil, notJSON("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(userData))
	dec.DisallowUnknownFields()
	var st keyStatement
	if err := dec.Decode(&st); err != nil {
		return nil, notJSON(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, notJSON("data after the object")
	}
	return &st, nil
}

// expectations are the --expect-* flags; a zero field is not checked.
type expectations struct {
	pubKey   []byte
	kmsKey   string
	origin   string
	nonce    []byte
	pcr0     []byte
	chainIDs []string
	anchor   *string // "" expects no anchor
}

func (x *expectations) register(fs *flag.FlagSet) {
	fs.Func("expect-pubkey", "the key's public key, hex or base64 of its bytes: 32 for ed25519, 33 for secp256k1 (user_data.public_key)", func(v string) (err error) {
		x.pubKey, err = parsePubKey(v)
		return err
	})
	fs.Func("expect-kms-key", "the KMS key ARN the key is sealed with (user_data.kms_key_id); a bare key id matches the ARN's key/ID", func(v string) error {
		if v == "" {
			return errors.New("empty")
		}
		x.kmsKey = v
		return nil
	})
	fs.Func("expect-origin", "generated (by KMS for the enclave) or imported (user_data.origin)", func(v string) error {
		if v != "generated" && v != "imported" {
			return errors.New("want generated or imported")
		}
		x.origin = v
		return nil
	})
	fs.Func("expect-nonce", "the nonce, hex, given to init or import (the document's nonce)", func(v string) (err error) {
		x.nonce, err = nonEmptyHex(v, 0)
		return err
	})
	fs.Func("expect-pcr0", "the enclave image's PCR0, 96 hex digits", func(v string) (err error) {
		x.pcr0, err = nonEmptyHex(v, 48)
		return err
	})
	fs.Func("expect-chain-id", "a chain the key is bound to; repeat for each: the set must equal user_data.chain_ids", func(v string) error {
		if v == "" {
			return errors.New("empty")
		}
		x.chainIDs = append(x.chainIDs, v)
		return nil
	})
	fs.Func("expect-anchor", "the anchor's fingerprint, hex, or '' for none (user_data.anchor)", func(v string) error {
		if v != "" {
			if _, err := nonEmptyHex(v, 0); err != nil {
				return err
			}
		}
		x.anchor = &v
		return nil
	})
}

// parsePubKey reads a public key of any type: the size tells them apart,
// and the statement's key matches only if the bytes, so the type, match.
func parsePubKey(v string) ([]byte, error) {
	valid := func(b []byte) bool {
		for _, t := range signer.KeyTypes() {
			if _, err := signer.NewPubKey(t, b); err == nil {
				return true
			}
		}
		return false
	}
	if b, err := hex.DecodeString(v); err == nil && valid(b) {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(v); err == nil && valid(b) {
		return b, nil
	}
	return nil, errors.New("want the hex or base64 of a public key: 32 bytes (ed25519) or a 33-byte compressed point (secp256k1)")
}

// nonEmptyHex decodes v, which must hold size bytes (any number if 0).
func nonEmptyHex(v string, size int) ([]byte, error) {
	b, err := hex.DecodeString(v)
	switch {
	case err != nil:
		return nil, fmt.Errorf("not hex: %w", err)
	case len(b) == 0:
		return nil, errors.New("empty")
	case size != 0 && len(b) != size:
		return nil, fmt.Errorf("want %d hex digits, got %d", 2*size, len(v))
	}
	return b, nil
}

// names lists the expectations given, in check order.
func (x expectations) names() []string {
	var n []string
	add := func(set bool, name string) {
		if set {
			n = append(n, name)
		}
	}
	add(x.pcr0 != nil, "PCR0")
	add(x.nonce != nil, "nonce")
	add(x.pubKey != nil, "public_key")
	add(x.kmsKey != "", "kms_key_id")
	add(x.origin != "", "origin")
	add(x.chainIDs != nil, "chain_ids")
	add(x.anchor != nil, "anchor")
	return n
}

func (x expectations) readsUserData() bool {
	return x.pubKey != nil || x.kmsKey != "" || x.origin != "" || x.chainIDs != nil || x.anchor != nil
}

// check returns every mismatch between d and x.
func (x expectations) check(d *attestation.Document) error {
	var errs failedExpectations
	mismatch := func(kind error, field, want, got string) {
		errs = append(errs, &mismatchError{kind, field, want, got})
	}
	if x.pcr0 != nil && !bytes.Equal(d.PCRs[0], x.pcr0) {
		mismatch(errPCR0Mismatch, "PCR0", hex.EncodeToString(x.pcr0), hexOrNone(d.PCRs[0]))
	}
	if x.nonce != nil && !bytes.Equal(d.Nonce, x.nonce) {
		mismatch(errNonceMismatch, "the nonce", hex.EncodeToString(x.nonce), hexOrNone(d.Nonce))
	}
	if !x.readsUserData() {
		return errs.orNil()
	}
	st, err := parseKeyStatement(d.UserData)
	if err != nil {
		return append(errs, err).orNil()
	}
	if x.pubKey != nil {
		got, err := hex.DecodeString(deref(st.PublicKey))
		if st.PublicKey == nil || err != nil || !bytes.Equal(got, x.pubKey) {
			mismatch(errPubKeyMismatch, "user_data.public_key", hex.EncodeToString(x.pubKey), quoted(st.PublicKey))
		}
	}
	if x.kmsKey != "" && (st.KMSKeyID == nil || !kmsKeyMatches(x.kmsKey, *st.KMSKeyID)) {
		mismatch(errKMSKeyMismatch, "user_data.kms_key_id", fmt.Sprintf("%q", x.kmsKey), quoted(st.KMSKeyID))
	}
	if x.origin != "" && deref(st.Origin) != x.origin {
		mismatch(errOriginMismatch, "user_data.origin", fmt.Sprintf("%q", x.origin), quoted(st.Origin))
	}
	if x.chainIDs != nil && (st.ChainIDs == nil || !sameSet(x.chainIDs, *st.ChainIDs)) {
		got := "absent"
		if st.ChainIDs != nil {
			got = jsonList(*st.ChainIDs)
		}
		mismatch(errChainIDsMismatch, "user_data.chain_ids", jsonList(x.chainIDs), got)
	}
	if x.anchor != nil && (st.Anchor == nil || !strings.EqualFold(*st.Anchor, *x.anchor)) {
		mismatch(errAnchorMismatch, "user_data.anchor", fmt.Sprintf("%q", *x.anchor), quoted(st.Anchor))
	}
	return errs.orNil()
}

func (f failedExpectations) orNil() error {
	if len(f) == 0 {
		return nil
	}
	return f
}

// kmsKeyMatches compares exactly, except that a bare key id matches an ARN
// ending in key/<id>: the operator may have noted either.
func kmsKeyMatches(want, got string) bool {
	if got == want {
		return true
	}
	return !strings.HasPrefix(want, "arn:") && strings.HasPrefix(got, "arn:") && strings.HasSuffix(got, ":key/"+want)
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func jsonList(s []string) string {
	b, _ := json.Marshal(s) // strings always encode
	return string(b)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func quoted(s *string) string {
	if s == nil {
		return "absent"
	}
	return fmt.Sprintf("%q", *s)
}

func hexOrNone(b []byte) string {
	if b == nil {
		return "(none)"
	}
	return hex.EncodeToString(b)
}

func readDocument(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if dec, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(raw))); err == nil {
		return dec, nil
	}
	return raw, nil
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	var ms int64
	if _, err := fmt.Sscan(s, &ms); err == nil {
		return time.UnixMilli(ms), nil
	}
	return time.Time{}, fmt.Errorf("--at %q is neither RFC 3339 nor unix milliseconds", s)
}

func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return certs, nil
}

func printDocument(env *Env, d *attestation.Document) {
	w := env.Stdout
	fmt.Fprintf(w, "verified: attestation document signed by a certificate chain to the trusted root\n")
	fmt.Fprintf(w, "module_id: %s\ntimestamp: %s\n", d.ModuleID, d.Timestamp.UTC().Format(time.RFC3339Nano))
	idx := make([]int, 0, len(d.PCRs))
	for i := range d.PCRs {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		fmt.Fprintf(w, "PCR%d: %s\n", i, hex.EncodeToString(d.PCRs[i]))
	}
	fmt.Fprintf(w, "public_key: %s\nuser_data: %s\nnonce: %s\n", b64(d.PublicKey), b64(d.UserData), b64(d.Nonce))
	if st, err := parseKeyStatement(d.UserData); err == nil {
		chains := "absent"
		if st.ChainIDs != nil {
			chains = jsonList(*st.ChainIDs)
		}
		keyType := signer.KeyTypeEd25519
		if st.KeyType != nil {
			keyType = *st.KeyType
		}
		fmt.Fprintf(w, "user_data.key_type: %s\n", keyType)
		fmt.Fprintf(w, "user_data.public_key: %s\nuser_data.kms_key_id: %s\nuser_data.sealed_key_sha256: %s\n"+
			"user_data.origin: %s\nuser_data.chain_ids: %s\nuser_data.anchor: %s\n",
			quoted(st.PublicKey), quoted(st.KMSKeyID), quoted(st.SealedKeySHA256), quoted(st.Origin), chains, quoted(st.Anchor))
	}
}

func b64(b []byte) string {
	if b == nil {
		return "(none)"
	}
	return base64.StdEncoding.EncodeToString(b)
}
