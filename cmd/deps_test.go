// Package cmd_test guards what each command links: every module must be
// listed, with a reason, in the command's modules.txt, and the enclave keeps
// to a package budget. A dependency is a decision a reviewer should see in
// a diff, not a side effect of an import.
package cmd_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const mainModule = "github.com/tmkms-nitro/tmkms-nitro"

// packageBudget bounds the packages (standard library included) linked into
// a command.
var packageBudget = map[string]int{
	"tmkms-nitro-enclave": 360,
}

// forbidden are this module's packages a command must never link: local
// mode's stand-ins, the development tools and the test helpers.
var forbidden = map[string][]string{
	"tmkms-nitro-enclave": {"internal/softnsm", "internal/localkms", "internal/localmode", "internal/localca", "internal/devcli", "internal/ha/etcdlocal", "internal/ha/hatest", "internal/localnode", "internal/bench", "internal/e2e", "internal/testprog", "internal/testlog", "internal/golden", "internal/config", "internal/metrics"},
	"tmkms-nitro-helper":  {"internal/devcli", "internal/ha/etcdlocal", "internal/ha/hatest", "internal/localnode", "internal/bench", "internal/e2e", "internal/testprog", "internal/testlog", "internal/golden"},
}

func TestDependencies(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not available")
	}
	cmds, err := filepath.Glob("tmkms-nitro-*")
	if err != nil || len(cmds) == 0 {
		t.Fatalf("no commands found: %v", err)
	}
	for _, cmd := range cmds {
		t.Run(cmd, func(t *testing.T) {
			allowed := readAllowlist(t, filepath.Join(cmd, "modules.txt"))
			pkgs, modules := deps(t, "./"+cmd)
			for _, m := range modules {
				if _, ok := allowed[m]; !ok {
					t.Errorf("%s now links module %s: if it is needed, add a line to cmd/%s/modules.txt saying why (%q)", cmd, m, cmd, m+"  <one-line reason>")
				}
			}
			for m := range allowed {
				if !slices.Contains(modules, m) {
					t.Errorf("cmd/%s/modules.txt lists %s, which %s no longer links: remove the line", cmd, m, cmd)
				}
			}
			for _, p := range forbidden[cmd] {
				if slices.Contains(pkgs, mainModule+"/"+p) {
					t.Errorf("%s links %s, which must stay out of it", cmd, p)
				}
			}
			if max, ok := packageBudget[cmd]; ok && len(pkgs) > max {
				t.Errorf("%s links %d packages, budget %d", cmd, len(pkgs), max)
			}
		})
	}
}

// deps returns the packages a command links and the modules they come from
// (the main module and the standard library excluded).
func deps(t *testing.T, pkg string) (pkgs, modules []string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{with .Module}}{{.Path}}{{end}}", pkg).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list %s: %v\n%s", pkg, err, stderr)
	}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		pkgs = append(pkgs, f[0])
		if len(f) == 2 && f[1] != mainModule && !slices.Contains(modules, f[1]) {
			modules = append(modules, f[1])
		}
	}
	return pkgs, modules
}

// readAllowlist reads "module reason..." lines; # starts a comment.
func readAllowlist(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("every command needs an allowlist of its modules: %v", err)
	}
	defer f.Close()
	allowed := map[string]string{}
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		module, reason, _ := strings.Cut(line, " ")
		if strings.TrimSpace(reason) == "" {
			t.Errorf("%s:%d: %s has no reason", path, n, module)
		}
		if _, dup := allowed[module]; dup {
			t.Errorf("%s:%d: %s is listed twice", path, n, module)
		}
		allowed[module] = strings.TrimSpace(reason)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return allowed
}
