package e2e

import (
	"os"
	"sync"
	"testing"

	"github.com/tmkms-nitro/tmkms-nitro/internal/testprog"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Programs builds tmkms-nitro-helper and tmkms-nitro-enclave once per test
// binary into a shared directory and returns it.
func Programs(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "tmkms-bin-"); buildErr == nil {
			buildErr = testprog.Build(buildDir, "tmkms-nitro-helper", "tmkms-nitro-enclave")
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}
