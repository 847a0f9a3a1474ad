package localmode

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tmkms-nitro/tmkms-nitro/internal/atomicfile"
	"github.com/tmkms-nitro/tmkms-nitro/internal/config"
	"github.com/tmkms-nitro/tmkms-nitro/internal/enclave"
)

// ReplicaOptions are what differs between instances of a set.
type ReplicaOptions struct {
	Instance string // the name in [ha]; "" keeps from's
	Address  string // the validator's address; "" moves from's socket into to
}

// Replicate makes the local home to from the initialized home from, as a
// second EC2 host of a high-availability set is set up: the same sealed
// keys, sealed anchor and KMS key (the local KMS's data), a copy of the
// state file, and its own sockets and processes. Paths in tmkms.toml that
// pointed into from point into to.
func Replicate(from, to string, o ReplicaOptions) error {
	if _, err := os.Stat(to); err == nil {
		return fmt.Errorf("local replicate: %s already exists", to)
	}
	if c, err := config.Load(filepath.Join(from, "tmkms.toml")); err != nil {
		return fmt.Errorf("local replicate: %w", err)
	} else if o.Address != "" && len(c.Validators) > 0 {
		return fmt.Errorf("local replicate: %s serves %d chains; a single --address cannot name their nodes (edit the copy's tmkms.toml instead)", from, len(c.Validators))
	}
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		switch {
		case d.IsDir() && rel == filepath.Dir(enclave.LocalHostSockets):
			return fs.SkipDir // sockets belong to the running processes
		case d.IsDir():
			return os.MkdirAll(dst, 0o700)
		case !d.Type().IsRegular() || strings.HasSuffix(rel, ".lock"):
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return atomicfile.WriteFile(dst, b, 0o600)
	})
	if err != nil {
		return fmt.Errorf("local replicate: %w", err)
	}
	return editConfig(to, func(c *config.Config) {
		move := func(p *string) {
			if rel, err := filepath.Rel(from, *p); *p != "" && err == nil && !strings.HasPrefix(rel, "..") {
				*p = filepath.Join(to, rel)
			}
		}
		move(&c.SealedIDKeyPath)
		for _, ch := range c.Chains() {
			paths := []*string{&ch.SealedConsensusKeyPath, &ch.SealedIDKeyPath, &ch.StateFilePath}
			if ch.HA != nil {
				paths = append(paths, &ch.HA.SealedAnchorPath, &ch.HA.CAFile, &ch.HA.CertFile, &ch.HA.KeyFile)
				if o.Instance != "" {
					ch.HA.Instance = o.Instance
				}
			}
			for _, p := range paths {
				move(p)
			}
			if o.Address != "" {
				ch.Addresses = []string{o.Address} // one chain: checked above
				continue
			}
			// The node sockets local init put into from move with it.
			for i, a := range ch.Addresses {
				if path, ok := strings.CutPrefix(a, "unix://"); ok {
					move(&path)
					ch.Addresses[i] = "unix://" + path
				}
			}
		}
	})
}

// SetHA writes an [ha] table (nil: none) into home's tmkms.toml.
func SetHA(home string, ha *config.HA) error {
	return editConfig(home, func(c *config.Config) { c.HA = ha })
}

func editConfig(home string, edit func(*config.Config)) error {
	return config.Edit(filepath.Join(home, "tmkms.toml"), edit)
}
