package preflight

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tmkms-nitro/tmkms-nitro/internal/sealedkey"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// maxStateRead bounds how much of a state file is read; native files are
// 2 KiB and JSON ones a few hundred bytes.
const maxStateRead = 1 << 20

func (r *runner) checkConsensusKey(context.Context) Result {
	return r.checkSealedKey(CheckConsensusKey, r.cfg.SealedConsensusKeyPath, sealedkey.Consensus, "sealed_consensus_key_path")
}

func (r *runner) checkIdentityKey(context.Context) Result {
	return r.checkSealedKey(CheckIdentityKey, r.cfg.SealedIDKeyPath, sealedkey.Identity, "sealed_id_key_path")
}

func (r *runner) checkSealedKey(name, path, purpose, key string) Result {
	if path == "" {
		return fail(name, key+" is not set", "set "+key+" in tmkms.toml to the file 'tmkms-nitro-helper init' wrote")
	}
	fi, res, ok := statRegular(name, path, "run 'tmkms-nitro-helper init' on this host, or set "+key+" to where the sealed key is")
	if !ok {
		return res
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fail(name, fmt.Sprintf("%s is accessible to group or others (mode %04o)", path, perm),
			fmt.Sprintf("chmod 600 %s (only the service user needs it)", path))
	}
	data, err := readLimited(path, sealedkey.MaxFileSize+1)
	if err != nil {
		return fail(name, err.Error(), "run check as the service user; the file must be readable by it")
	}
	k, err := sealedkey.Parse(data)
	if err != nil {
		return fail(name, fmt.Sprintf("%s: %v", path, err), "is this the file 'tmkms-nitro-helper init' (or tmkms-light) wrote?")
	}
	if !k.Legacy() && k.Purpose != purpose {
		return fail(name, fmt.Sprintf("%s holds a %s key, not a %s key", path, k.Purpose, purpose),
			"the consensus key is secrets/secret.key and the identity key secrets/id.key; check the paths in tmkms.toml")
	}
	if r.chain != "" {
		r.keys[name+" for chain "+r.chain] = k
	} else {
		r.keys[name] = k
	}
	if k.Legacy() {
		return pass(name, path+": tmkms-light sealed key (records no public key, KMS key or region)")
	}
	return pass(name, fmt.Sprintf("%s: %s %s key %s, sealed with KMS key %s in %s",
		path, k.KeyType, k.Purpose, base64.StdEncoding.EncodeToString(k.PublicKey), k.KMSKeyID, k.Region))
}

func (r *runner) checkStateFile(context.Context) Result {
	path := r.cfg.StateFilePath
	if res, ok := checkStateDir(filepath.Dir(path)); !ok {
		return res
	}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return r.missingState(path)
	}
	if err != nil {
		return fail(CheckStateFile, err.Error(), "run check as the service user")
	}
	if !fi.Mode().IsRegular() {
		return fail(CheckStateFile, path+" is not a regular file", "state_file_path must name the double-sign state file")
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fail(CheckStateFile, fmt.Sprintf("%s is writable by group or others (mode %04o): whoever can rewrite it can roll back double-sign protection", path, perm),
			"chmod 600 "+path)
	}
	res := r.parseState(path)
	if perm := fi.Mode().Perm(); res.Status == Pass && perm&0o044 != 0 {
		return warn(CheckStateFile, fmt.Sprintf("%s (mode %04o: readable by group or others)", res.Detail, perm), "chmod 600 "+path)
	}
	return res
}

func checkStateDir(dir string) (Result, bool) {
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		return fail(CheckStateFile, fmt.Sprintf("the state directory %s: %v", dir, err),
			fmt.Sprintf("mkdir -m 700 %s (the systemd unit in deploy/ creates it)", dir)), false
	case !fi.IsDir():
		return fail(CheckStateFile, dir+" is not a directory", "state_file_path must be in a directory"), false
	case fi.Mode().Perm()&0o022 != 0:
		return fail(CheckStateFile, fmt.Sprintf("the state directory %s is writable by group or others (mode %04o): whoever can replace the file can roll back double-sign protection", dir, fi.Mode().Perm()),
			"chmod 700 "+dir), false
	}
	return Result{}, true
}

func (r *runner) missingState(path string) Result {
	if r.cfg.AllowMissingState {
		return warn(CheckStateFile, path+" does not exist; allow_missing_state is set, so start begins at height 0",
			"only for a brand-new validator key: remove allow_missing_state once the file exists")
	}
	return fail(CheckStateFile, path+" does not exist",
		"copy the node's priv_validator_state.json (or tmkms-light's state file) there; it is converted on first start\n"+
			"only for a brand-new validator key, set allow_missing_state = true to start at height 0")
}

// parseState reads the state without locking or migrating it.
func (r *runner) parseState(path string) Result {
	data, err := readLimited(path, maxStateRead)
	if err != nil {
		return fail(CheckStateFile, err.Error(), "run check as the service user; the file must be readable by it")
	}
	var (
		st     signstate.State
		detail string
	)
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		var format string
		st, format, err = signstate.ParseJSON(data)
		detail = fmt.Sprintf("%s: %s JSON state at %s; start converts it to the native format (original kept as %s.pre-migration-%s)",
			path, format, st.HRS(), filepath.Base(path), format)
	} else {
		st, err = signstate.Peek(path)
		detail = fmt.Sprintf("%s: state at %s", path, st.HRS())
	}
	if err != nil {
		return fail(CheckStateFile, fmt.Sprintf("%s: %v", path, err),
			"a damaged state file is never repaired automatically: restore it from a backup, or take the node's priv_validator_state.json")
	}
	if chain, err := signstate.ChainID(st); err == nil && chain != "" && chain != r.cfg.ChainID {
		return fail(CheckStateFile, fmt.Sprintf("%s was signed for chain %s, but chain_id is %s", path, chain, r.cfg.ChainID),
			"use the state file of this chain's validator (a new chain starts from a new state file)")
	}
	return pass(CheckStateFile, detail)
}

// statRegular stats a file that must exist and be regular.
func statRegular(name, path, hintMissing string) (fs.FileInfo, Result, bool) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fail(name, path+" does not exist", hintMissing), false
	case err != nil:
		return nil, fail(name, err.Error(), "run check as the service user"), false
	case !fi.Mode().IsRegular():
		return nil, fail(name, path+" is not a regular file", hintMissing), false
	}
	return fi, Result{}, true
}

func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}
