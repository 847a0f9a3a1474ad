// Package redact keeps secrets out of printed output: Secret masks a
// value, Fields lists a type's fields once for every output (fmt, slog,
// JSON), and Format makes every fmt verb print a type's redacting String.
package redact

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Mask stands in for a secret in printed output.
const Mask = "REDACTED"

// Secret shows whether a secret is set, never what it is.
func Secret(s string) string {
	if s == "" {
		return ""
	}
	return Mask
}

// Stringer is a value whose String and GoString already redact.
type Stringer interface {
	String() string
	GoString() string
}

// Format prints v's redacted forms for every verb: GoString for %#v,
// String otherwise. Without it, fmt's bad-verb path (%d on a struct) would
// print the fields without their methods, secrets included.
func Format(f fmt.State, verb rune, v Stringer) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, v.GoString())
		return
	}
	io.WriteString(f, v.String())
}

// Field is one field of a value that holds secrets.
type Field struct {
	Key    string
	Value  string
	Secret bool // printed through Secret
}

func (f Field) shown() string {
	if f.Secret {
		return Secret(f.Value)
	}
	return f.Value
}

// Fields are a value's fields in order. A type holding secrets lists them
// once and prints through these methods, so a secret masked in one output
// cannot be forgotten in another.
type Fields []Field

// String prints {key:"value" ...}.
func (fs Fields) String() string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = fmt.Sprintf("%s:%q", f.Key, f.shown())
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// LogValue is an slog group of the fields.
func (fs Fields) LogValue() slog.Value {
	attrs := make([]slog.Attr, len(fs))
	for i, f := range fs {
		attrs[i] = slog.String(f.Key, f.shown())
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON is a JSON object of the fields.
func (fs Fields) MarshalJSON() ([]byte, error) {
	m := make(map[string]string, len(fs))
	for _, f := range fs {
		m[f.Key] = f.shown()
	}
	return json.Marshal(m)
}
