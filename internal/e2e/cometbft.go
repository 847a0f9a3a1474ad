// Package e2e runs real CometBFT nodes for end-to-end tests: it builds the
// node binaries from the Go module proxy (once per version, cached) and
// starts single-validator chains whose priv_validator_laddr points at a
// signer under test.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Versions are the CometBFT releases the end-to-end tests run against: the
// v0.34 and v0.37 dialect, the v0.38 lineage (v0.40 is its current release)
// and v1.0.
var Versions = []string{"v0.34.35", "v0.37.18", "v0.38.26", "v0.40.0", "v1.0.1"}

// CacheDir is where node binaries are kept: $TMKMS_COMETBFT_DIR, or the
// user cache directory.
func CacheDir() (string, error) {
	if d := os.Getenv("TMKMS_COMETBFT_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "tmkms-nitro", "cometbft"), nil
}

// Binary returns the path of the cometbft binary for version, building it
// first if it is not cached. Concurrent callers (test packages run in
// parallel) wait for one build.
func Binary(ctx context.Context, version string) (string, error) {
	dir, err := CacheDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, version, "cometbft")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, version+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", err
	}
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	tmp := out + ".tmp"
	if strings.HasPrefix(version, "v0.34.") {
		err = buildFromSource(ctx, version, tmp)
	} else {
		err = goInstall(ctx, version, tmp)
	}
	if err != nil {
		return "", fmt.Errorf("building cometbft %s: %w", version, err)
	}
	return out, os.Rename(tmp, out)
}

func goCmd(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append([]string{"GOWORK=off", "GOFLAGS=-modcacherw", "CGO_ENABLED=0"}, env...)...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, buf.String())
	}
	return nil
}

func goInstall(ctx context.Context, version, out string) error {
	gobin, err := os.MkdirTemp(filepath.Dir(out), "gobin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(gobin)
	if err := goCmd(ctx, gobin, []string{"GOBIN=" + gobin}, "install", "github.com/cometbft/cometbft/cmd/cometbft@"+version); err != nil {
		return err
	}
	return os.Rename(filepath.Join(gobin, "cometbft"), out)
}

// buildFromSource builds v0.34, whose go.mod replaces three modules with
// forks the module proxy refuses; the upstream modules build fine for a
// test node, so the replacements are dropped.
func buildFromSource(ctx context.Context, version, out string) error {
	work, err := os.MkdirTemp(filepath.Dir(out), "src-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	var info struct{ Dir string }
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", "github.com/cometbft/cometbft@"+version)
	cmd.Dir, cmd.Env = work, append(os.Environ(), "GOWORK=off", "GOFLAGS=-modcacherw")
	b, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go mod download: %w", err)
	}
	if err := json.Unmarshal(b, &info); err != nil || info.Dir == "" {
		return errors.New("go mod download gave no module directory")
	}
	src := filepath.Join(work, "src")
	if err := os.CopyFS(src, os.DirFS(info.Dir)); err != nil {
		return err
	}
	if err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err == nil {
			err = os.Chmod(p, 0o755)
		}
		return err
	}); err != nil {
		return err
	}
	mod, err := os.ReadFile(filepath.Join(src, "go.mod"))
	if err != nil {
		return err
	}
	var kept []string
	for _, line := range strings.Split(string(mod), "\n") {
		if !strings.Contains(line, "=> github.com/informalsystems/") {
			kept = append(kept, line)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(strings.Join(kept, "\n")), 0o644); err != nil {
		return err
	}
	return goCmd(ctx, src, nil, "build", "-mod=mod", "-o", out, "./cmd/cometbft")
}

// nodeBinary is Binary for a test, which cannot go on without it.
func nodeBinary(ctx context.Context, t testing.TB, version string) string {
	t.Helper()
	p, err := Binary(ctx, version)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// hasVoteExtensions reports whether nodes of version have vote extensions
// (v0.38 and later).
func hasVoteExtensions(version string) bool {
	return !strings.HasPrefix(version, "v0.34.") && !strings.HasPrefix(version, "v0.37.")
}

// BuildAll builds every version in Versions, for CI to do once up front.
func BuildAll(ctx context.Context, log func(string, ...any)) error {
	for _, v := range Versions {
		start := time.Now()
		p, err := Binary(ctx, v)
		if err != nil {
			return err
		}
		log("cometbft %s: %s (%s)", v, p, time.Since(start).Round(time.Second))
	}
	return nil
}
