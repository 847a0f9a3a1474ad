package pcr

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the checked-in fuzz seed corpus")

const corpusDir = "testdata/fuzz/FuzzReadEIF"

// seedEIFs are the checked-in corpus: valid images in each shape the parser
// accepts, plus near misses that stop at different checks.
func seedEIFs(t testing.TB) map[string][]byte {
	signed := append(NitroCLILayout(testKernel, testCmdline, testBoot, testApp),
		RawSection{SectionSignature, []byte{0x81, 0xa0}})
	badCRC := nitroEIF(t)
	badCRC[len(badCRC)-1] ^= 0xff
	return map[string][]byte{
		"valid-nitro-cli-layout": nitroEIF(t),
		"valid-three-ramdisks":   mustBuild(t, EIFSpec{Sections: NitroCLILayout(testKernel, testCmdline, testBoot, testApp, testApp2)}),
		"valid-signed-aarch64":   mustBuild(t, EIFSpec{Flags: FlagARM64, Sections: signed}),
		"valid-v2-one-ramdisk": mustBuild(t, EIFSpec{Version: 2, Sections: []RawSection{
			{SectionKernel, testKernel}, {SectionCmdline, testCmdline}, {SectionRamdisk, testBoot}}}),
		"bad-crc":       badCRC,
		"truncated":     nitroEIF(t)[:HeaderSize+20],
		"no-ramdisk-v4": build2(t, RawSection{SectionKernel, testKernel}, RawSection{SectionCmdline, nil}, RawSection{SectionMetadata, nil}),
	}
}

func build2(t testing.TB, sections ...RawSection) []byte {
	return mustBuild(t, EIFSpec{Sections: sections})
}

// TestFuzzSeedCorpus keeps the checked-in corpus present and current: a
// fuzz target whose corpus silently vanished would still pass.
func TestFuzzSeedCorpus(t *testing.T) {
	seeds := seedEIFs(t)
	if *update {
		if err := os.MkdirAll(corpusDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range seeds {
			entry := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
			if err := os.WriteFile(filepath.Join(corpusDir, name), []byte(entry), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, want := range seeds {
		raw, err := os.ReadFile(filepath.Join(corpusDir, name))
		if err != nil {
			t.Fatalf("seed %s missing (run go test -run TestFuzzSeedCorpus -update): %v", name, err)
		}
		got, err := parseCorpusEntry(raw)
		if err != nil {
			t.Fatalf("seed %s: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("seed %s is stale (run go test -run TestFuzzSeedCorpus -update)", name)
		}
	}
}

func parseCorpusEntry(raw []byte) ([]byte, error) {
	body, ok := strings.CutPrefix(string(raw), "go test fuzz v1\n[]byte(")
	if !ok {
		return nil, errors.New("not a go test fuzz v1 []byte entry")
	}
	body, ok = strings.CutSuffix(body, ")\n")
	if !ok {
		return nil, errors.New("unterminated entry")
	}
	s, err := strconv.Unquote(body)
	return []byte(s), err
}

// FuzzReadEIF checks three properties on any input: ReadEIF never panics;
// every rejection is a *FormatError (a bytes.Reader cannot fail to read);
// every accepted image re-measures to the same PCRs from its own section
// list and re-serialises to the same bytes. Each input is also tried with
// its CRC fixed, or almost every mutation would stop at the CRC check.
func FuzzReadEIF(f *testing.F) {
	for _, b := range seedEIFs(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		// Real EIFs are megabytes, but every check is reached by small
		// ones (the seeds are under 2 KiB): bigger inputs only make the
		// hashing longer. 64 KiB keeps an execution in milliseconds.
		if len(in) > 64<<10 {
			return
		}
		fuzzOne(t, in)
		if len(in) >= HeaderSize {
			fixed := bytes.Clone(in)
			putCRC(fixed)
			fuzzOne(t, fixed)
		}
	})
}

func fuzzOne(t *testing.T, in []byte) {
	img, err := ReadEIF(bytes.NewReader(in), int64(len(in)))
	if err != nil {
		var fe *FormatError
		if !errors.As(err, &fe) || img != nil {
			t.Fatalf("rejection is not a bare *FormatError: %v (image %v)", err, img)
		}
		return
	}
	checkAccepted(t, in, img)
}

func checkAccepted(t *testing.T, in []byte, img *Image) {
	var all, boot, app [][]byte
	spec := EIFSpec{Version: img.Header.Version, Flags: img.Header.Flags,
		DefaultMem: img.Header.DefaultMem, DefaultCPUs: img.Header.DefaultCPUs}
	ramdisks := 0
	for _, s := range img.Sections {
		data := in[s.DataOffset : s.DataOffset+s.Size]
		spec.Sections = append(spec.Sections, RawSection{s.Type, data})
		switch {
		case s.Type == SectionKernel || s.Type == SectionCmdline:
			all, boot = append(all, data), append(boot, data)
		case s.Type == SectionRamdisk && ramdisks == 0:
			all, boot = append(all, data), append(boot, data)
			ramdisks++
		case s.Type == SectionRamdisk:
			all, app = append(all, data), append(app, data)
		}
	}
	m := img.Measurements
	if Hex(m.PCR0) != naiveMeasure(all...) || Hex(m.PCR1) != naiveMeasure(boot...) || Hex(m.PCR2) != naiveMeasure(app...) {
		t.Fatalf("measurements disagree with an independent computation")
	}
	rebuilt, err := BuildEIF(spec)
	if err != nil {
		t.Fatalf("BuildEIF of an accepted image: %v", err)
	}
	// BuildEIF writes zeros in the two reserved header fields, which ReadEIF
	// ignores as the hypervisor does; compare with those zeroed.
	want := bytes.Clone(in)
	clear(want[24:26])
	clear(want[crcOffset-4 : crcOffset])
	putCRC(want)
	if !bytes.Equal(rebuilt, want) {
		t.Fatalf("accepted image does not re-serialise to the same bytes")
	}
}
