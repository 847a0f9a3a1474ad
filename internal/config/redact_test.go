package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const (
	testSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
	testToken  = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN"
)

func withCredentials() *Config {
	c := Default("us-east-1")
	c.Credentials = &Credentials{KeyID: "AKIAEXAMPLE", SecretKey: testSecret, SessionToken: testToken}
	return c
}

func assertNoSecret(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range []string{testSecret, testToken} {
		if strings.Contains(out, s) {
			t.Errorf("%s contains a secret:\n%s", what, out)
		}
	}
}

func TestConfigRedacted(t *testing.T) {
	c := withCredentials()
	for name, v := range map[string]any{
		"*Config": c, "Config": *c, "*Credentials": c.Credentials, "Credentials": *c.Credentials,
		"[]*Config": []*Config{c},
	} {
		var out strings.Builder
		fmt.Fprintf(&out, "%v %+v %#v %s %q %x %d", v, v, v, v, v, v, v)
		out.WriteString(fmt.Sprint(v))
		for _, h := range []slog.Handler{slog.NewJSONHandler(&out, nil), slog.NewTextHandler(&out, nil)} {
			slog.New(h).Info("loaded", "config", v)
		}
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out.Write(j)
		assertNoSecret(t, name, out.String())
		if !strings.Contains(out.String(), "AKIAEXAMPLE") || !strings.Contains(out.String(), "REDACTED") {
			t.Errorf("%s: want the key id and REDACTED shown:\n%s", name, out.String())
		}
	}
}

// TestHAFormatted checks that [ha] prints as settings, not as a pointer,
// key_file included: it is a path, not the key.
func TestHAFormatted(t *testing.T) {
	c := withCredentials()
	c.HA = haConfig().HA
	for name, v := range map[string]any{"*Config": c, "Config": *c, "*HA": c.HA} {
		var out strings.Builder
		fmt.Fprintf(&out, "%v %+v %#v %s", v, v, v, v)
		slog.New(slog.NewTextHandler(&out, nil)).Info("loaded", "config", v)
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out.Write(j)
		assertNoSecret(t, name, out.String())
		for _, want := range []string{"https://etcd-1.internal:2379", "etcd/signer-a-key.pem", "signer-a"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: %q not shown:\n%s", name, want, out.String())
			}
		}
		if strings.Contains(out.String(), "HA:0x") {
			t.Errorf("%s: [ha] shown as a pointer:\n%s", name, out.String())
		}
	}
}

// TestErrorsRedacted feeds broken credentials and checks that no error
// quotes the secret.
func TestErrorsRedacted(t *testing.T) {
	for _, tail := range []string{
		"[credentials]\naws_key_id = 'AKIA'\naws_secret_key = '" + testSecret + "' x\n",
		"[credentials]\naws_key_id = 'AKIA'\naws_secret_key = \"" + testSecret + "\\q\"\n",
		"[credentials]\naws_key_id = 'AKIA'\naws_secret_key = '" + testSecret + "\n",
		"[credentials]\naws_key_id = 'AKIA'\naws_secret_key = '" + testSecret + "'\naws_session_token = " + testToken + "\n",
		"credentials = { aws_key_id = 'AKIA', aws_secret_key = '" + testSecret + "' x }\n",
		"[credentials]\naws_secret_key = '" + testSecret + "'\naws_session_token = '" + testToken + "'\n",
		"[credentials]\naws_key_id = 'AKIA'\naws_secret_key = '" + testSecret + "'\naws_secret_key = '" + testToken + "'\n",
	} {
		_, err := Parse([]byte(minimal+tail), "")
		if err == nil {
			t.Fatalf("%q parsed", tail)
		}
		assertNoSecret(t, "error", err.Error())
		var fe *FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%v is not a *FieldError", err)
		}
	}
}
