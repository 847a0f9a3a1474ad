package signstate

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	f, err := Open(path, Options{AllowMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.State(); got.HRS() != (HRS{}) {
		t.Fatalf("fresh state = %v", got.HRS())
	}
	var last State
	for h := int64(1); h <= 5; h++ {
		for _, step := range []Step{StepPropose, StepPrevote, StepPrecommit} {
			_, last = vote(StepPrevote, h, 0, 0xA, t0)
			last.Step = step
			if err := f.Save(context.Background(), last); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.Close()
	g, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	assertState(t, g.State(), last)
}

func assertState(t *testing.T, got, want State) {
	t.Helper()
	if got.HRS() != want.HRS() || !got.BlockID.Equal(want.BlockID) || !bytes.Equal(got.SignBytes, want.SignBytes) || !bytes.Equal(got.Signature, want.Signature) {
		t.Fatalf("state = %+v, want %+v", got, want)
	}
}

func TestFileMissing(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "nope"), Options{})
	if !errors.Is(err, ErrNoStateFile) {
		t.Fatalf("err = %v, want ErrNoStateFile", err)
	}
}

func TestFileRefusesLowerState(t *testing.T) {
	f, _ := Open(filepath.Join(t.TempDir(), "s"), Options{AllowMissing: true})
	defer f.Close()
	_, s5 := vote(StepPrecommit, 5, 0, 0xA, t0)
	_, s4 := vote(StepPrecommit, 4, 0, 0xA, t0)
	if err := f.Save(context.Background(), s5); err != nil {
		t.Fatal(err)
	}
	if err := f.Save(context.Background(), s4); !errors.Is(err, ErrHeightRegression) {
		t.Fatalf("err = %v, want ErrHeightRegression", err)
	}
	// Another payload at the same position: refused; the same payload
	// with another timestamp, or the same state again: accepted.
	_, other := vote(StepPrecommit, 5, 0, 0xB, t0)
	if err := f.Save(context.Background(), other); !errors.Is(err, ErrDoubleSign) {
		t.Fatalf("other payload at the same position: err = %v, want ErrDoubleSign", err)
	}
	_, later := vote(StepPrecommit, 5, 0, 0xA, t0.Add(time.Second))
	for _, st := range []State{s5, later} {
		if err := f.Save(context.Background(), st); err != nil {
			t.Fatalf("idempotent save: %v", err)
		}
	}
	assertState(t, f.State(), later)
}

func TestFileLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	f, err := Open(path, Options{AllowMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Open(path, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: err = %v, want ErrLocked", err)
	}
}

// A torn write damages only the slot being written: the previous state
// must come back.
func TestFileTornWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	f, _ := Open(path, Options{AllowMissing: true})
	_, s1 := vote(StepPrevote, 7, 0, 0xA, t0)
	_, s2 := vote(StepPrecommit, 7, 0, 0xA, t0)
	f.Save(context.Background(), s1)
	f.Save(context.Background(), s2)
	seq := f.seq
	f.Close()
	data, _ := os.ReadFile(path)
	slot := int(seq%2) * slotSize
	for _, cut := range []int{1, 17, 100, slotSize - 5} {
		torn := bytes.Clone(data)
		clear(torn[slot+cut : slot+slotSize]) // the tail of the newest slot never reached the disk
		os.WriteFile(path, torn, 0o600)
		g, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		assertState(t, g.State(), s1)
		g.Close()
	}
}

func TestFileCorrupt(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	f, _ := Open(good, Options{AllowMissing: true})
	f.Close()
	data, _ := os.ReadFile(good)
	both := bytes.Clone(data)
	both[30] ^= 1
	both[slotSize+30] ^= 1
	tests := map[string][]byte{
		"empty":          {},
		"short":          data[:100],
		"long":           append(bytes.Clone(data), 0),
		"both slots bad": both,
		"garbage":        bytes.Repeat([]byte{0x42}, fileSize),
		"json garbage":   []byte(`{"height":`),
		"unknown key":    []byte(`{"height":"1","round":0,"step":1,"sig":"x"}`),
		"negative":       []byte(`{"height":"-1","round":0,"step":1}`),
		"bad step":       []byte(`{"height":"1","round":0,"step":7}`),
		"bad signbytes":  []byte(`{"height":"1","round":0,"step":2,"signbytes":"zz"}`),
		"tmkms step":     []byte(`{"height":"1","round":"0","step":3,"block_id":null}`),
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			os.WriteFile(path, content, 0o600)
			if _, err := Open(path, Options{AllowMissing: true}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, content) {
				t.Fatal("a corrupt state file was modified")
			}
		})
	}
}

func TestImportFilePV(t *testing.T) {
	_, want := vote(StepPrecommit, 1234, 2, 0xA, t0)
	js := `{
  "height": "1234",
  "round": 2,
  "step": 3,
  "signature": "` + b64(want.Signature) + `",
  "signbytes": "` + strings.ToUpper(hexs(want.SignBytes)) + `"
}`
	got := migrate(t, js, FormatFilePV)
	assertState(t, got, want)
}

func TestImportFilePVFresh(t *testing.T) {
	got := migrate(t, `{"height":"0","round":0,"step":0}`, FormatFilePV)
	assertState(t, got, State{})
}

func TestImportTmkmsLight(t *testing.T) {
	js := `{"height":"1234","round":"0","step":1,"block_id":{"hash":"` + strings.Repeat("0A", 32) +
		`","part_set_header":{"total":1,"hash":"` + strings.Repeat("0B", 32) + `"}}}`
	got := migrate(t, js, FormatTmkmsLight)
	want := State{Height: 1234, Step: StepPrevote, BlockID: BlockID{Hash: bytes.Repeat([]byte{0xA}, 32), PartsTotal: 1, PartsHash: bytes.Repeat([]byte{0xB}, 32)}}
	assertState(t, got, want)
	// The guard then allows only the same block at 1234/0/prevote.
	if _, err := Check(got, first(vote(StepPrevote, 1234, 0, 0xC, t0))); !errors.Is(err, ErrDoubleSign) {
		t.Fatalf("other block after import: %v", err)
	}
	if _, err := Check(got, first(vote(StepPrevote, 1234, 0, 0xA, t0))); err != nil {
		t.Fatalf("same block after import: %v", err)
	}
}

func TestImportTmkmsLightInitial(t *testing.T) {
	js := `{"height":"0","round":"0","step":0,"block_id":{"hash":"","parts":{"total":"0","hash":""}}}`
	got := migrate(t, js, FormatTmkmsLight)
	assertState(t, got, State{})
}

// migrate writes a JSON state file, opens it, and checks the migration:
// native file in place, original kept.
func migrate(t *testing.T, js, format string) State {
	t.Helper()
	path := filepath.Join(t.TempDir(), "priv_validator_state.json")
	os.WriteFile(path, []byte(js), 0o600)
	f, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	backup, err := os.ReadFile(path + ".pre-migration-" + format)
	if err != nil || string(backup) != js {
		t.Fatalf("original not kept: %v", err)
	}
	if data, _ := os.ReadFile(path); len(data) != fileSize || string(data[:16]) != slotMagic {
		t.Fatal("state file not migrated to the native format")
	}
	return f.State()
}

func b64(b []byte) string  { return base64.StdEncoding.EncodeToString(b) }
func hexs(b []byte) string { return hex.EncodeToString(b) }

// FuzzUnmarshalState: the state record decoder never panics, and what it
// accepts re-encodes to the same bytes.
func FuzzUnmarshalState(f *testing.F) {
	_, s := vote(StepPrecommit, 9, 2, 0xA, t0)
	for _, st := range []State{{}, s, imported(s)} {
		b, err := MarshalState(st)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxPayload+1 { // no record is longer: a slot holds it
			return
		}
		st, err := UnmarshalState(b)
		if err != nil {
			return
		}
		again, err := MarshalState(st)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs: %x vs %x (%v)", again, b, err)
		}
	})
}

// FuzzParseJSON: JSON state files never panic the parser, and what it
// accepts is a valid state.
func FuzzParseJSON(f *testing.F) {
	f.Add([]byte(`{"height":"5","round":1,"step":2,"signature":"","signbytes":""}`))
	f.Add([]byte(`{"height":"1234","round":"0","step":1,"block_id":{"hash":"0A0A","part_set_header":{"total":1,"hash":"0B"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxJSONStateBytes+1 { // ParseJSON refuses these first
			return
		}
		st, _, err := ParseJSON(b)
		if err == nil && validate(st) != nil {
			t.Fatalf("accepted an invalid state %+v", st)
		}
	})
}

// FuzzPeek: whatever bytes a state file holds, loading it never panics,
// and a state it accepts is a valid one.
func FuzzPeek(f *testing.F) {
	dir := f.TempDir()
	good := filepath.Join(dir, "good")
	s, err := Open(good, Options{AllowMissing: true})
	if err != nil {
		f.Fatal(err)
	}
	_, st := vote(StepPrecommit, 9, 2, 0xA, t0)
	s.Save(context.Background(), st)
	s.Close()
	data, _ := os.ReadFile(good)
	f.Add(data)
	f.Add(data[:slotSize])
	// One file per worker process, rewritten for each input. A t.TempDir
	// per input made every execution look new to the engine (the random
	// directory name takes other paths through os and strconv), so it spent
	// its time minimizing noise: about 50 counted executions a second.
	path := filepath.Join(f.TempDir(), "s")
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > fileSize+1 { // Peek reads no more than this
			return
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := Peek(path)
		if err == nil && validate(got) != nil {
			t.Fatalf("accepted an invalid state %+v", got)
		}
	})
}
