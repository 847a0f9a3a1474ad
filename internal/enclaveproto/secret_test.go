package enclaveproto

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestSecretsNeverPrinted formats every value holding a secret in every
// way a log line might, and checks that no secret survives.
func TestSecretsNeverPrinted(t *testing.T) {
	creds := testCredentials()
	seed := bytes.Repeat([]byte{0x5e}, SeedSize)
	imp := &ImportKey{Region: "r", Purpose: PurposeConsensus, Credentials: creds, Seed: seed}
	values := map[string]any{
		"credentials":       creds,
		"*credentials":      &creds,
		"configure":         &Configure{ChainID: "c", Credentials: creds},
		"configure value":   Configure{ChainID: "c", Credentials: creds},
		"generate key":      &GenerateKey{Credentials: creds},
		"import key":        imp,
		"import key value":  *imp,
		"secret bytes":      SecretBytes(seed),
		"message as iface":  Message(imp),
		"slice of messages": []Message{imp, &GenerateKey{Credentials: creds}},
	}
	secrets := []string{
		testSecret, testToken,
		string(seed), hex.EncodeToString(seed), fmt.Sprint(seed), // raw, %x, %v of []byte
		"Xl5eXl5e", // base64 of the seed, as encoding/json writes []byte
	}
	for name, v := range values {
		var out strings.Builder
		fmt.Fprintf(&out, "%v %+v %#v %s %q %x %X", v, v, v, v, v, v, v)
		for _, h := range []slog.Handler{slog.NewJSONHandler(&out, nil), slog.NewTextHandler(&out, nil)} {
			slog.New(h).Info("msg", "v", v, slog.Any("any", v))
		}
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: json.Marshal: %v", name, err)
		}
		out.Write(j)
		for _, s := range secrets {
			if strings.Contains(out.String(), s) {
				t.Errorf("%s: output contains secret %q:\n%s", name, s, out.String())
			}
		}
	}
}

func TestCredentialsString(t *testing.T) {
	got := testCredentials().String()
	want := `{access_key_id:"ASIAEXAMPLEKEYID0001" secret_access_key:"REDACTED" session_token:"REDACTED" expiration:"2026-11-25T06:00:00Z"}`
	if got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
	if got := (Credentials{}).String(); !strings.Contains(got, `secret_access_key:""`) {
		t.Errorf("empty credentials print as %s; an unset secret should show as empty", got)
	}
}
