package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"
	"github.com/cometbft/cometbft/types"
)

// TestMetrics scrapes the helper's Prometheus endpoint after real signing
// through the local stack, a double-sign attempt and a wrong chain id.
func TestMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	chain := "metrics-chain"
	addr := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	st := startLocalStack(t, chain, func(home string) {
		path := filepath.Join(home, "tmkms.toml")
		cfg, _ := os.ReadFile(path)
		cfg = []byte(strings.Replace(string(cfg), "# metrics_address = '127.0.0.1:9100'", "metrics_address = '"+addr+"'", 1))
		if err := os.WriteFile(path, cfg, 0o600); err != nil {
			t.Fatal(err)
		}
	})
	client := st.client
	for h := int64(1); h <= 3; h++ {
		v := &cmtproto.Vote{Type: types.PrevoteType, Height: h, BlockID: faultBlock(h, 0), Timestamp: time.Now().UTC()}
		if err := client.SignVote(chain, v, true); err != nil {
			t.Fatal(err)
		}
	}
	conflict := &cmtproto.Vote{Type: types.PrevoteType, Height: 3, BlockID: faultBlock(3, 0xB), Timestamp: time.Now().UTC()}
	if err := client.SignVote(chain, conflict, true); err == nil {
		t.Fatal("conflicting vote signed")
	}
	client.SignVote("other-chain", &cmtproto.Vote{Type: types.PrevoteType, Height: 4, BlockID: faultBlock(4, 0), Timestamp: time.Now().UTC()}, true)

	want := []string{
		`tmkms_signatures_total{chain_id="metrics-chain",type="prevote"} 3`,
		`tmkms_refusals_total{chain_id="metrics-chain",reason="double_sign"} 1`,
		`tmkms_refusals_total{chain_id="metrics-chain",reason="wrong_chain_id"} 1`,
		`tmkms_enclave_up{chain_id="metrics-chain"} 1`,
		`tmkms_last_signed_height{chain_id="metrics-chain"} 3`,
		`tmkms_validator_connected{chain_id="metrics-chain"} 1`,
		`tmkms_state_persist_seconds_count{chain_id="metrics-chain"} 3`,
		`tmkms_signing_latency_seconds_count{chain_id="metrics-chain"} 3`,
	}
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		body = get(t, "http://"+addr+"/metrics")
		if missing(body, want) == "" {
			break
		}
	}
	if m := missing(body, want); m != "" {
		t.Fatalf("metrics lack %q:\n%s", m, grepLines(body, "tmkms_"))
	}
	if h := get(t, "http://"+addr+"/healthz"); strings.TrimSpace(h) != "ok" {
		t.Fatalf("/healthz = %q", h)
	}
}

func get(t *testing.T, url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func missing(body string, want []string) string {
	for _, w := range want {
		if !strings.Contains(body, w) {
			return w
		}
	}
	return ""
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
