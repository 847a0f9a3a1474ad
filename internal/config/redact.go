package config

import (
	"fmt"
	"log/slog"

	"github.com/tmkms-nitro/tmkms-nitro/internal/redact"
)

// Redaction. Credentials implement fmt.Formatter, fmt.GoStringer,
// slog.LogValuer and json.Marshaler, and Config formats through a
// method-less copy whose Credentials field still redacts, so no %v, %+v,
// %#v, %s, slog or json output of either shows the secret key or token.
// KeyID is an identifier, not a secret, and is shown.

func (c Credentials) fields() redact.Fields {
	return redact.Fields{
		{Key: "aws_key_id", Value: c.KeyID},
		{Key: "aws_secret_key", Value: c.SecretKey, Secret: true},
		{Key: "aws_session_token", Value: c.SessionToken, Secret: true},
	}
}

// String returns the credentials with the secret key and token redacted.
func (c Credentials) String() string { return c.fields().String() }

// GoString is String for %#v.
func (c Credentials) GoString() string { return "config.Credentials" + c.String() }

// Format prints the redacted form for every verb.
func (c Credentials) Format(f fmt.State, verb rune) { redact.Format(f, verb, c) }

// LogValue implements slog.LogValuer.
func (c Credentials) LogValue() slog.Value { return c.fields().LogValue() }

// MarshalJSON is redacted; it exists so that logging a Config as JSON
// cannot leak.
func (c Credentials) MarshalJSON() ([]byte, error) { return c.fields().MarshalJSON() }

// String prints the [ha] settings. HA holds no secret (key_file is a
// path, not the key); without String, Config's output would show the
// table as a pointer address.
func (h HA) String() string {
	type plain HA
	return fmt.Sprintf("%+v", plain(h))
}

// String prints every setting, with credentials redacted.
func (c Config) String() string {
	type plain Config
	return fmt.Sprintf("%+v", plain(c))
}

// GoString is String for %#v.
func (c Config) GoString() string { return "config.Config" + c.String() }

// Format prints the redacted form for every verb; fmt's bad-verb path
// (%d on a Config) would otherwise print fields without their methods.
func (c Config) Format(f fmt.State, verb rune) { redact.Format(f, verb, c) }
