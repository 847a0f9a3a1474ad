package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Footprint is what the enclave program weighs, measured with the go tool on
// the source tree the bench runs in. Every byte and package of it is trusted
// code, measured into PCR0.
type Footprint struct {
	// Platform is what the packages are listed and the binaries built for.
	Platform string `json:"platform,omitempty"`
	// EnclavePackages counts the packages tmkms-nitro-enclave links, the
	// standard library included.
	EnclavePackages int `json:"enclave_packages,omitempty"`
	// EnclaveBinaryBytes is the binary as deploy/enclave/Dockerfile builds
	// it into the image (stripped).
	EnclaveBinaryBytes int64 `json:"enclave_binary_bytes,omitempty"`
	// HelperPackages counts the packages tmkms-nitro-helper links: it has no
	// goal, but development tools linked into it show here.
	HelperPackages int `json:"helper_packages,omitempty"`
	// NotMeasured says why the go tool could not measure the footprint.
	NotMeasured string `json:"not_measured,omitempty"`
}

// The enclave image's build, from deploy/enclave/Dockerfile (GOARCH aside,
// which is this machine's); TestImageBuild keeps the two equal.
var (
	imageBuildEnv   = []string{"CGO_ENABLED=0", "GOOS=linux", "GOAMD64=v1", "GOARM64=v8.0", "GOTOOLCHAIN=local", "GOFLAGS=-mod=readonly"}
	imageBuildFlags = []string{"-trimpath", "-buildvcs=false"}
)

const imageLdflags = "'-s -w -buildid='"

const (
	enclavePkg = "github.com/tmkms-nitro/tmkms-nitro/cmd/tmkms-nitro-enclave"
	helperPkg  = "github.com/tmkms-nitro/tmkms-nitro/cmd/tmkms-nitro-helper"
)

// The enclave's footprint goals. The size is in MB, 10^6 bytes.
const (
	goalEnclavePackages = 360
	goalEnclaveMB       = 15
)

// measureFootprint measures the footprint in the module that holds dir ("":
// the current directory). What stops it is reported in NotMeasured: the
// footprint is a part of the report, not a reason to fail the run.
func measureFootprint(ctx context.Context, dir string) *Footprint {
	f := &Footprint{Platform: "linux/" + runtime.GOARCH}
	if err := f.measure(ctx, dir); err != nil {
		return &Footprint{NotMeasured: err.Error()}
	}
	return f
}

func (f *Footprint) measure(ctx context.Context, dir string) error {
	var err error
	if f.EnclavePackages, err = countPackages(ctx, dir, enclavePkg); err != nil {
		return err
	}
	if f.HelperPackages, err = countPackages(ctx, dir, helperPkg); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "tmkms-bench-footprint-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	f.EnclaveBinaryBytes, err = buildSize(ctx, dir, filepath.Join(tmp, "image"))
	return err
}

// countPackages counts what go list -deps lists for pkg: every package it
// links, its own and the standard library's included.
func countPackages(ctx context.Context, dir, pkg string) (int, error) {
	out, err := goTool(ctx, dir, "list", "-deps", pkg)
	return len(strings.Fields(out)), err
}

// buildSize builds the enclave with the image's flags into out and returns
// its size.
func buildSize(ctx context.Context, dir, out string) (int64, error) {
	args := append([]string{"build"}, imageBuildFlags...)
	if _, err := goTool(ctx, dir, append(args, "-ldflags="+strings.Trim(imageLdflags, "'"), "-o", out, enclavePkg)...); err != nil {
		return 0, err
	}
	fi, err := os.Stat(out)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// goTool runs the go command in dir with the image's build environment.
func goTool(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append(imageBuildEnv, "GOARCH="+runtime.GOARCH)...)
	out, err := cmd.Output()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return "", fmt.Errorf("go %s: %s", args[0], strings.TrimSpace(string(ee.Stderr)))
	}
	if err != nil {
		return "", fmt.Errorf("go %s: %w", args[0], err)
	}
	return string(out), nil
}

// footprintTargets checks the measured footprint against its goals.
func footprintTargets(f *Footprint) []Target {
	if f == nil || f.NotMeasured != "" {
		return nil
	}
	return []Target{
		limit("enclave packages", float64(f.EnclavePackages), goalEnclavePackages, "packages"),
		limit("enclave binary", mb(f.EnclaveBinaryBytes), goalEnclaveMB, "MB"),
	}
}

func mb(b int64) float64 { return float64(b) / 1e6 }
