// Package testprog runs this module's commands as programs in tests: it
// builds them from the tree under test, and runs a command's testscript
// scripts with the enclave program at hand.
package testprog

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// Build builds each named command (the package cmd/<name> of this module)
// into dir, as dir/<name>.
func Build(dir string, names ...string) error {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	for _, name := range names {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), "./cmd/"+name)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", name, err, out)
		}
	}
	return nil
}

// Main is a command test's TestMain: it lets the scripts run the command
// name, in-process, as main would.
func Main(m *testing.M, name string, main func() int) {
	testscript.Main(m, map[string]func(){
		name: func() { os.Exit(main()) },
	})
}

// Script runs the scripts in testdata/*.txt with $ENCLAVE the enclave
// program built from this tree, and each of env ("KEY=value") set.
func Script(t *testing.T, env ...string) {
	enclave := t.TempDir()
	if err := Build(enclave, "tmkms-nitro-enclave"); err != nil {
		t.Fatalf("building the enclave: %v", err)
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Setup: func(e *testscript.Env) error {
			e.Setenv("ENCLAVE", filepath.Join(enclave, "tmkms-nitro-enclave"))
			e.Vars = append(e.Vars, env...)
			return nil
		},
	})
}
