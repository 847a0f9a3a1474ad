package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzLoad checks that any document either parses into a Config that
// Marshal writes back identically, or fails with FieldErrors only, none
// of them unclear (no key and no line).
func FuzzLoad(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "*.toml*"))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(minimal + "[credentials]\naws_key_id = 'a'\naws_secret_key = 'b'\n"))
	f.Add([]byte(withHA()))
	f.Add([]byte(withHA("-key_prefix", "-lease_ttl", "-instance")))
	f.Fuzz(func(t *testing.T, data []byte) {
		// tmkms.toml is about 2 KiB. go-toml tracks tables with a linear
		// scan per header, so a file of thousands of tables is quadratic:
		// about 1 s at the 256 KiB Parse allows, 0.1 s at 64 KiB. Bound
		// one execution well below the engine's 10 s limit for a worker;
		// the size limit itself is a unit test.
		if len(data) > 64<<10 {
			return
		}
		c, err := Parse(data, "/base")
		if err != nil {
			checkError(t, err)
			return
		}
		out, err := Marshal(c)
		if err != nil {
			t.Fatalf("parsed %v but Marshal fails: %v", c, err)
		}
		back, err := Parse(out, "/base")
		if err != nil {
			t.Fatalf("Marshal output does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip changed the config:\n got %#v\nwant %#v", back, c)
		}
	})
}

func checkError(t *testing.T, err error) {
	t.Helper()
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	unknown := 0
	for _, e := range errs {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("error is not a *FieldError: %v", e)
		}
		if fe.Kind == ErrUnknownKey {
			unknown++
		}
		if fe.Key == "" && fe.Line == 0 && fe.Kind != ErrSyntax {
			t.Fatalf("error names neither a key nor a line: %v", e)
		}
		if fe.Msg == "" || fe.Kind == nil {
			t.Fatalf("error without kind or message: %#v", fe)
		}
	}
	// go-toml rescans the whole document for each unknown key it reports,
	// so more than maxUnknownKeys of them is quadratic: a 256 KiB file of
	// [[x]] headers took 53 s before precheck counted them.
	if unknown > maxUnknownKeys {
		t.Fatalf("%d unknown-key errors, want at most %d", unknown, maxUnknownKeys)
	}
}
