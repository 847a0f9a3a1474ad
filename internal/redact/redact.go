// Package redact keeps secrets out of printed output: Secret masks a
// value, and Format makes every fmt verb print a type's redacting String.
package redact

import (
	"fmt"
	"io"
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
