// Package nitrocli drives AWS's nitro-cli and vsock-proxy, the tools that
// start enclaves and forward the enclave's KMS traffic on an EC2 host. It
// only runs them and reads their JSON output; it never parses an EIF.
package nitrocli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Tools names the programs; empty fields use $TMKMS_NITRO_CLI or
// "nitro-cli", and $TMKMS_VSOCK_PROXY or "vsock-proxy".
type Tools struct {
	NitroCLI, VsockProxy string
}

func (t Tools) nitroCLI() string { return pick(t.NitroCLI, "TMKMS_NITRO_CLI", "nitro-cli") }
func (t Tools) proxy() string    { return pick(t.VsockProxy, "TMKMS_VSOCK_PROXY", "vsock-proxy") }

func pick(v, env, def string) string {
	if v != "" {
		return v
	}
	if e := os.Getenv(env); e != "" {
		return e
	}
	return def
}

// Enclave is one entry of `nitro-cli describe-enclaves`.
type Enclave struct {
	EnclaveID    string `json:"EnclaveID"`
	EnclaveCID   uint32 `json:"EnclaveCID"`
	State        string `json:"State"`
	NumberOfCPUs int    `json:"NumberOfCPUs"`
	MemoryMiB    int    `json:"MemoryMiB"`
	Flags        string `json:"Flags"`
}

// RunOptions are run-enclave's settings; tmkms-light's defaults are 2 CPUs and
// 512 MiB.
type RunOptions struct {
	EIFPath   string
	CPUCount  int
	MemoryMiB int
	CID       uint32 // 0: nitro-cli picks one
	Debug     bool   // debug mode: console readable, PCRs all zero
}

func (t Tools) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, t.nitroCLI(), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if errorsIsNotFound(err) {
			return nil, fmt.Errorf("nitrocli: %s not found: install the AWS Nitro Enclaves CLI (aws-nitro-enclaves-cli)", t.nitroCLI())
		}
		return nil, fmt.Errorf("nitrocli: %s %s: %v: %s", t.nitroCLI(), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func errorsIsNotFound(err error) bool {
	var ee *exec.Error
	return errors.As(err, &ee) || errors.Is(err, fs.ErrNotExist)
}

// Describe lists the running enclaves.
func (t Tools) Describe(ctx context.Context) ([]Enclave, error) {
	out, err := t.run(ctx, "describe-enclaves")
	if err != nil {
		return nil, err
	}
	var es []Enclave
	if err := json.Unmarshal(out, &es); err != nil {
		return nil, fmt.Errorf("nitrocli: unexpected describe-enclaves output: %w", err)
	}
	return es, nil
}

// Run starts an enclave and returns it.
func (t Tools) Run(ctx context.Context, o RunOptions) (Enclave, error) {
	args := []string{"run-enclave", "--cpu-count", strconv.Itoa(o.CPUCount), "--memory", strconv.Itoa(o.MemoryMiB), "--eif-path", o.EIFPath}
	if o.CID != 0 {
		args = append(args, "--enclave-cid", strconv.FormatUint(uint64(o.CID), 10))
	}
	if o.Debug {
		args = append(args, "--debug-mode")
	}
	out, err := t.run(ctx, args...)
	if err != nil {
		return Enclave{}, err
	}
	var r struct{ Enclave Enclave }
	if err := json.Unmarshal(out, &r); err != nil || r.Enclave.EnclaveID == "" {
		return Enclave{}, fmt.Errorf("nitrocli: unexpected run-enclave output: %s", bytes.TrimSpace(out))
	}
	return r.Enclave, nil
}

// Terminate stops the enclave with id, or all enclaves if id is empty.
func (t Tools) Terminate(ctx context.Context, id string) error {
	args := []string{"terminate-enclave", "--all"}
	if id != "" {
		args = []string{"terminate-enclave", "--enclave-id", id}
	}
	_, err := t.run(ctx, args...)
	return err
}

// Proxy starts vsock-proxy forwarding vsock port 8000 to the region's KMS
// endpoint; it runs until ctx ends.
func (t Tools) Proxy(ctx context.Context, region string, port int, configFile string) (*exec.Cmd, error) {
	args := []string{strconv.Itoa(port), "kms." + region + ".amazonaws.com", "443"}
	if configFile != "" {
		args = append(args, "--config", configFile)
	}
	cmd := exec.CommandContext(ctx, t.proxy(), args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("nitrocli: cannot start %s (install aws-nitro-enclaves-cli): %w", t.proxy(), err)
	}
	return cmd, nil
}
