package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestFootprintTargets(t *testing.T) {
	for _, tc := range []struct {
		name             string
		f                *Footprint
		pkgsMet, sizeMet bool
		want             int // targets
	}{
		{"at the goals", &Footprint{EnclavePackages: 360, EnclaveBinaryBytes: 15_000_000}, true, true, 2},
		{"one over each", &Footprint{EnclavePackages: 361, EnclaveBinaryBytes: 15_000_001}, false, false, 2},
		{"15 MiB is over 15 MB", &Footprint{EnclavePackages: 100, EnclaveBinaryBytes: 15 << 20}, true, false, 2},
		{"not measured", &Footprint{NotMeasured: "no go tool"}, false, false, 0},
		{"not asked for", nil, false, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := footprintTargets(tc.f)
			if len(got) != tc.want {
				t.Fatalf("targets %+v, want %d", got, tc.want)
			}
			if tc.want == 0 {
				return
			}
			if got[0].Met != tc.pkgsMet || got[0].Unit != "packages" || got[0].Limit != 360 {
				t.Errorf("package target %+v, want met %v", got[0], tc.pkgsMet)
			}
			if got[1].Met != tc.sizeMet || got[1].Unit != "MB" || got[1].Limit != 15 {
				t.Errorf("size target %+v, want met %v", got[1], tc.sizeMet)
			}
		})
	}
}

// TestMeasureFootprint measures this source tree's enclave and checks the
// report's verdicts against the numbers.
func TestMeasureFootprint(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the enclave twice")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not available")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f := measureFootprint(ctx, "")
	switch {
	case f.NotMeasured != "":
		t.Fatalf("not measured: %s", f.NotMeasured)
	case f.EnclavePackages <= 100 || f.HelperPackages <= 100:
		t.Errorf("packages: enclave %d, helper %d; the standard library alone is more than 100", f.EnclavePackages, f.HelperPackages)
	case f.EnclaveBinaryBytes < 1e6:
		t.Errorf("binary of %d bytes", f.EnclaveBinaryBytes)
	case f.Platform != "linux/"+runtime.GOARCH:
		t.Errorf("platform %q", f.Platform)
	}
	rep := newReport(Environment{}, Options{Heights: 1}, nil, f)
	wantMet := map[string]bool{
		"enclave packages": f.EnclavePackages <= 360,
		"enclave binary":   f.EnclaveBinaryBytes <= 15_000_000,
	}
	if len(rep.Targets) != len(wantMet) {
		t.Fatalf("targets %+v", rep.Targets)
	}
	for _, tg := range rep.Targets {
		if met, ok := wantMet[tg.Name]; !ok || tg.Met != met {
			t.Errorf("target %+v for %+v", tg, f)
		}
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"packages linked, standard library included: ", " MB\n", "tmkms-nitro-helper: ", "enclave packages", "enclave binary"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, text.String())
		}
	}
}

// TestFootprintNotMeasured: without the go tool or outside the module, the
// report says why and has no footprint targets.
func TestFootprintNotMeasured(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		noGo       bool
	}{
		{"no go tool", `"go": executable file not found`, true},
		{"outside the module", "go list: ", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.noGo {
				t.Setenv("PATH", t.TempDir())
			} else if _, err := exec.LookPath("go"); err != nil {
				t.Skip("the go command is not available")
			}
			f := measureFootprint(context.Background(), t.TempDir())
			if !strings.Contains(f.NotMeasured, tc.want) || f.EnclavePackages != 0 {
				t.Fatalf("footprint %+v, want not measured with %q", f, tc.want)
			}
			var text bytes.Buffer
			rep := newReport(Environment{}, Options{Heights: 1}, nil, f)
			if err := rep.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			if len(rep.Targets) != 0 || !strings.Contains(text.String(), "not measured: "+f.NotMeasured) {
				t.Errorf("targets %+v, report:\n%s", rep.Targets, text.String())
			}
		})
	}
}

// TestImageBuild keeps the footprint's build the one the enclave image runs.
func TestImageBuild(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	df, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "deploy", "enclave", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	build := "go build " + strings.Join(imageBuildFlags, " ") + " -ldflags=" + imageLdflags + " -o /out/tmkms-nitro-enclave ./cmd/tmkms-nitro-enclave"
	if !bytes.Contains(df, []byte(build)) {
		t.Errorf("the Dockerfile no longer runs %q: update imageBuildFlags and imageLdflags", build)
	}
	var envLine string
	for line := range strings.Lines(string(df)) {
		if strings.HasPrefix(line, "ENV ") {
			envLine = " " + strings.TrimSpace(line) + " "
		}
	}
	for _, kv := range imageBuildEnv {
		if !strings.Contains(envLine, " "+kv+" ") {
			t.Errorf("the Dockerfile's ENV line %q lacks %s: update imageBuildEnv", envLine, kv)
		}
	}
}
