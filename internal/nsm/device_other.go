//go:build !linux

package nsm

import (
	"fmt"
	"runtime"
)

// openTransport exists so that the package builds everywhere; the NSM is a
// Linux driver, so Open always fails here.
func openTransport(path string) (transport, error) {
	return nil, fmt.Errorf("nsm: %s is not supported on %s: %w", path, runtime.GOOS, ErrNotSupported)
}
