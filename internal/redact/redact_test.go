package redact

import (
	"fmt"
	"log/slog"
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

// Every output of Fields masks the secret fields and shows the others.
func TestFieldsRedactEveryOutput(t *testing.T) {
	fs := Fields{{Key: "id", Value: "AKIA"}, {Key: "secret", Value: "hunter2", Secret: true}, {Key: "unset", Secret: true}}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("m", "creds", fs)
	j, err := fs.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"String": fs.String(), "slog": logged.String(), "JSON": string(j)} {
		if strings.Contains(out, "hunter2") || !strings.Contains(out, Mask) || !strings.Contains(out, "AKIA") {
			t.Errorf("%s printed %q", name, out)
		}
	}
	if got := fs.String(); got != `{id:"AKIA" secret:"REDACTED" unset:""}` {
		t.Errorf("String() = %s", got)
	}
}
