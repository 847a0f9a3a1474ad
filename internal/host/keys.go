package host

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/atomicfile"
	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
)

// ErrKeyExists is returned instead of overwriting a sealed key.
var ErrKeyExists = errors.New("a sealed key already exists")

// SealKey asks the enclave to generate (GenerateKey) or import (ImportKey)
// a key and seal it with KMS. The plaintext key never reaches the host.
func SealKey(ctx context.Context, dial func(context.Context) (net.Conn, error), req enclaveproto.Message) (*enclaveproto.GeneratedKey, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	nc, err := dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the enclave: %w", err)
	}
	c := enclaveproto.NewConn(nc, enclaveproto.MaxPayload(enclaveproto.TypeGeneratedKey))
	defer c.Close()
	m, err := c.Call(ctx, req)
	if err != nil {
		return nil, err
	}
	gk, ok := m.(*enclaveproto.GeneratedKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s in answer to %s", enclaveproto.ErrUnexpectedType, m.Type(), req.Type())
	}
	return gk, nil
}

// WriteSecret writes a sealed key file (mode 0600, durably), refusing to
// replace an existing one unless force.
func WriteSecret(path string, data []byte, force bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if _, err := os.Stat(path); err == nil && !force {
		return fmt.Errorf("%w at %s", ErrKeyExists, path)
	}
	return atomicfile.WriteFile(path, data, 0o600)
}
