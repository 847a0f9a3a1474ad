package enclaveproto

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/redact"
)

// The secret types below implement fmt.Formatter, fmt.GoStringer,
// slog.LogValuer and json.Marshaler so that no formatting path (%v, %+v,
// %#v, %s, %x, slog text or JSON, json.Marshal of an enclosing message)
// can print them. The CBOR encoder ignores all four, so the wire format
// still carries the real values.

// Credentials are AWS credentials the host passes to the enclave, which has
// no network and no IMDS of its own. AccessKeyID is an identifier and is
// printed; SecretAccessKey and SessionToken never are. Expiration is the zero
// time when unknown (static keys); on the wire every time is RFC 3339 text in
// UTC, nanosecond precision.
type Credentials struct {
	AccessKeyID     string    `cbor:"access_key_id"`
	SecretAccessKey string    `cbor:"secret_access_key"`
	SessionToken    string    `cbor:"session_token"`
	Expiration      time.Time `cbor:"expiration"`
}

func (c Credentials) expiration() string {
	if c.Expiration.IsZero() {
		return "none"
	}
	return c.Expiration.UTC().Format(time.RFC3339)
}

func (c Credentials) fields() redact.Fields {
	return redact.Fields{
		{Key: "access_key_id", Value: c.AccessKeyID},
		{Key: "secret_access_key", Value: c.SecretAccessKey, Secret: true},
		{Key: "session_token", Value: c.SessionToken, Secret: true},
		{Key: "expiration", Value: c.expiration()},
	}
}

// String returns the credentials with the secret and token redacted.
func (c Credentials) String() string { return c.fields().String() }

// GoString is String for %#v.
func (c Credentials) GoString() string { return "enclaveproto.Credentials" + c.String() }

// Format prints the redacted form for every verb.
func (c Credentials) Format(f fmt.State, verb rune) { redact.Format(f, verb, c) }

// LogValue implements slog.LogValuer.
func (c Credentials) LogValue() slog.Value { return c.fields().LogValue() }

// MarshalJSON exists only so that logging an enclosing message as JSON
// cannot leak; the JSON is redacted and not meant to be read back.
func (c Credentials) MarshalJSON() ([]byte, error) { return c.fields().MarshalJSON() }

func (c *Credentials) normalize() { c.Expiration = c.Expiration.UTC() }

// validate allows no credentials (local mode) or a key id with its secret.
func (c *Credentials) validate() error {
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		return invalid("credentials need both an access key id and a secret access key")
	}
	if c.AccessKeyID == "" && c.SessionToken != "" {
		return invalid("credentials have a session token but no access key id")
	}
	return checkTime("credentials expiration", c.Expiration)
}

// SecretBytes is key material (ImportKey's seed). It prints as its length
// only.
type SecretBytes []byte

func (s SecretBytes) String() string {
	return redact.Mask + "(" + strconv.Itoa(len(s)) + " bytes)"
}

// GoString is String for %#v.
func (s SecretBytes) GoString() string { return s.String() }

// Format prints the redacted form for every verb.
func (s SecretBytes) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// LogValue implements slog.LogValuer.
func (s SecretBytes) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON redacts, like Credentials.MarshalJSON.
func (s SecretBytes) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// Messages holding secrets format themselves too: fmt's bad-verb path
// (for example %s on a *ImportKey inside a slice) prints nested fields
// without calling their methods, which would bypass the redaction above.
// Each Format prints a method-less copy, whose fields still redact.

func (c Configure) Format(f fmt.State, verb rune) {
	type plain Configure
	formatRedacted(f, verb, "Configure", plain(c))
}

func (g GenerateKey) Format(f fmt.State, verb rune) {
	type plain GenerateKey
	formatRedacted(f, verb, "GenerateKey", plain(g))
}

func (i ImportKey) Format(f fmt.State, verb rune) {
	type plain ImportKey
	formatRedacted(f, verb, "ImportKey", plain(i))
}

// formatRedacted prints v with %v, or %+v for %+v and %#v; every other
// verb prints as %v.
func formatRedacted(f fmt.State, verb rune, name string, v any) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprintf(f, "enclaveproto.%s%+v", name, v)
	case verb == 'v' && f.Flag('+'):
		fmt.Fprintf(f, "%+v", v)
	default:
		fmt.Fprintf(f, "%v", v)
	}
}
