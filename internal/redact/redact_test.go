package redact

import (
	"fmt"
	"strings"
	"testing"
)

type creds struct{ key string }

func (c creds) String() string                { return "{key:" + Secret(c.key) + "}" }
func (c creds) GoString() string              { return "creds" + c.String() }
func (c creds) Format(f fmt.State, verb rune) { Format(f, verb, c) }

func TestEveryVerbRedacts(t *testing.T) {
	c := creds{key: "hunter2"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
		if out := fmt.Sprintf(verb, c); strings.Contains(out, "hunter2") || !strings.Contains(out, Mask) {
			t.Errorf("%s printed %q", verb, out)
		}
	}
	if Secret("") != "" {
		t.Error("an unset secret should print as empty")
	}
}
