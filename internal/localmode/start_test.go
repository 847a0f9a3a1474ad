package localmode

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
)

// TestStartRefusesRemoteValidator checks every address Start may take,
// from tmkms.toml or --address, and that the refusal comes before
// anything is started: the enclave program does not even exist.
func TestStartRefusesRemoteValidator(t *testing.T) {
	const remote = "tcp://192.0.2.1:26659"
	cases := []struct {
		name     string
		file     []string // the address list in tmkms.toml
		override string   // StartOptions.Address
		insecure bool
		want     error // nil: got past the check, to the missing enclave
	}{
		{"remote in the file", []string{remote}, "", false, ErrRemoteValidator},
		{"remote second in the file", []string{"tcp://127.0.0.1:26659", remote}, "", false, ErrRemoteValidator},
		{"remote override", []string{"unix:///tmp/v.sock"}, remote, false, ErrRemoteValidator},
		{"loopback override of a remote file", []string{remote}, "tcp://[::1]:26659", false, nil},
		{"loopback list", []string{"tcp://127.0.0.1:26659", "tcp://localhost:26660"}, "", false, nil},
		{"remote, insecure", []string{"tcp://127.0.0.1:26659", remote}, "", true, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			home := t.TempDir()
			cfg := config.Default("us-east-1")
			cfg.Addresses = c.file
			data, err := config.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(home, "tmkms.toml"), data, 0o600); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			var override map[string]string
			if c.override != "" {
				override = map[string]string{"": c.override}
			}
			err = Start(t.Context(), StartOptions{Home: home, Addresses: override, Insecure: c.insecure,
				Enclave: filepath.Join(home, "no-such-enclave"), Log: slog.New(slog.NewTextHandler(&logs, nil))})
			want := c.want
			if want == nil {
				want = ErrNoEnclaveBinary
			}
			if !errors.Is(err, want) {
				t.Fatalf("Start = %v, want an error wrapping %v", err, want)
			}
			if want == ErrRemoteValidator && !strings.Contains(err.Error(), remote) {
				t.Errorf("the refusal %q does not name the address %s", err, remote)
			}
			if warned := strings.Contains(logs.String(), remote); warned != c.insecure {
				t.Errorf("insecure %v, but the log names %s: %v\n%s", c.insecure, remote, warned, logs.String())
			}
		})
	}
}
