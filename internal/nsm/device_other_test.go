//go:build !linux

package nsm

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

func TestOpenNotSupported(t *testing.T) {
	d, err := Open()
	if d != nil || !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), runtime.GOOS) {
		t.Fatalf("Open = %v, %v; want ErrNotSupported naming %s", d, err, runtime.GOOS)
	}
}
