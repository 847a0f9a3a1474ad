package bench

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/cometbft/cometbft/version"
)

// Environment is what the numbers were measured on.
type Environment struct {
	CPUs         int    `json:"cpus"`
	CPUModel     string `json:"cpu_model,omitempty"`
	GoVersion    string `json:"go_version"`
	GOOS         string `json:"goos"`
	GOARCH       string `json:"goarch"`
	Kernel       string `json:"kernel,omitempty"`
	CometBFT     string `json:"cometbft"`
	Dir          string `json:"dir"`
	FS           string `json:"fs"`
	Device       string `json:"device,omitempty"`
	MountOptions string `json:"mount_options,omitempty"`
	// The machine's load average (1, 5, 15 min) when the run started and
	// ended: other work on the machine shows in the numbers.
	LoadAvgStart string `json:"load_average_start,omitempty"`
	LoadAvgEnd   string `json:"load_average_end,omitempty"`
}

// probeEnvironment describes this machine and the filesystem holding dir.
func probeEnvironment(dir string) Environment {
	e := Environment{
		CPUs:      runtime.NumCPU(),
		CPUModel:  cpuModel(),
		GoVersion: runtime.Version(),
		GOOS:      runtime.GOOS,
		GOARCH:    runtime.GOARCH,
		Kernel:    strings.TrimSpace(readString("/proc/sys/kernel/osrelease")),
		CometBFT:  "v" + version.CMTSemVer,
		Dir:       dir,
		FS:        "unknown",

		LoadAvgStart: loadAvg(),
	}
	if m, ok := mountOf(dir); ok {
		e.FS, e.Device, e.MountOptions = m.fsType, m.source, m.options
	}
	return e
}

func readString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}

func cpuModel() string {
	for _, line := range strings.Split(readString("/proc/cpuinfo"), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

type mount struct{ point, options, fsType, source string }

// mountOf finds the mount holding dir in /proc/self/mountinfo: the one with
// the longest mount point that is a prefix of dir.
func mountOf(dir string) (mount, bool) {
	if p, err := filepath.EvalSymlinks(dir); err == nil {
		dir = p
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return mount{}, false
	}
	defer f.Close()
	var best mount
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m, ok := parseMountInfo(sc.Text())
		if ok && within(dir, m.point) && (!found || len(m.point) >= len(best.point)) {
			best, found = m, true
		}
	}
	return best, found
}

// parseMountInfo parses one line of /proc/PID/mountinfo:
// "36 35 98:0 /root /mnt rw,noatime shared:1 - ext4 /dev/vda rw,errors=remount-ro".
func parseMountInfo(line string) (mount, bool) {
	pre, post, ok := strings.Cut(line, " - ")
	if !ok {
		return mount{}, false
	}
	a, b := strings.Fields(pre), strings.Fields(post)
	if len(a) < 6 || len(b) < 2 {
		return mount{}, false
	}
	return mount{point: strings.ReplaceAll(a[4], `\040`, " "), options: a[5], fsType: b[0], source: b[1]}, true
}

func within(path, dir string) bool {
	if dir == "/" {
		return true
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	f := strings.Fields(readString("/proc/loadavg"))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
