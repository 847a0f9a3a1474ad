package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode"
)

// Validate checks every setting and returns all problems, joined. Each is
// a *FieldError wrapping ErrInvalid and naming its key.
func (c *Config) Validate() error {
	v := validator{}
	addrs := c.ValidatorAddresses()
	scheme := ""
	for _, a := range addrs {
		if v.address(a) == "tcp" {
			scheme = "tcp"
		}
	}
	v.check("address", len(addrs) <= MaxAddresses, "lists %d nodes, at most %d are served", len(addrs), MaxAddresses)
	v.check("chain_id", c.ChainID != "", "must not be empty")
	v.check("chain_id", len(c.ChainID) <= MaxChainIDLen, "is %d bytes, CometBFT allows at most %d", len(c.ChainID), MaxChainIDLen)
	v.check("max_height", c.MaxHeight >= 0, "must not be negative")
	v.path("sealed_consensus_key_path", c.SealedConsensusKeyPath, true)
	v.path("sealed_id_key_path", c.SealedIDKeyPath, scheme == "tcp")
	v.path("state_file_path", c.StateFilePath, true)
	// Nitro gives enclaves CIDs from 4 up; 0-3 are the hypervisor, the
	// loopback, the host and the parent, and 2^32-1 is VMADDR_CID_ANY.
	v.check("enclave_config_cid", c.EnclaveConfigCID >= 4 && c.EnclaveConfigCID < 1<<32-1,
		"must be from 4 to 4294967294, got %d", c.EnclaveConfigCID)
	v.ports(c)
	v.check("aws_region", strings.TrimSpace(c.AWSRegion) != "", "must not be empty")
	v.credentials(c.Credentials)
	v.check("kms_key_id", len(c.KMSKeyID) <= 2048 && !strings.ContainsFunc(c.KMSKeyID, unicode.IsSpace),
		"must be a key id, key ARN, alias name or alias ARN, without spaces")
	v.check("protocol_version", validProtocol(c.ProtocolVersion),
		"%q is not one of auto, v0.34, v0.37, v0.38, v0.39, v0.40, v1.0", c.ProtocolVersion)
	v.check("max_message_size", c.MaxMessageSize >= MinMaxMessageSize && c.MaxMessageSize <= MaxMaxMessageSize,
		"must be from %d to %d bytes, got %d", MinMaxMessageSize, MaxMaxMessageSize, c.MaxMessageSize)
	v.metrics(c.MetricsAddress)
	v.check("log_format", c.LogFormat == "text" || c.LogFormat == "json", "%q is neither text nor json", c.LogFormat)
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) check(key string, ok bool, format string, args ...any) {
	if !ok {
		v.errs = append(v.errs, &FieldError{Key: key, Kind: ErrInvalid, Msg: fmt.Sprintf(format, args...)})
	}
}

// address checks the validator address and returns its scheme.
func (v *validator) address(a string) string {
	const want = "want unix:///path or tcp://[node_id@]host:port"
	scheme, rest, ok := strings.Cut(a, "://")
	switch {
	case !ok:
		v.check("address", false, "%q has no scheme; %s", a, want)
	case scheme == "unix":
		v.check("address", strings.HasPrefix(rest, "/") && !strings.ContainsRune(rest, 0),
			"%q must name an absolute socket path (unix:///path)", a)
	case scheme == "tcp":
		v.tcpAddress(a, rest)
	default:
		v.check("address", false, "scheme %q is not supported; %s", scheme, want)
	}
	return scheme
}

func (v *validator) tcpAddress(a, rest string) {
	if id, hostport, ok := strings.Cut(rest, "@"); ok {
		v.check("address", len(id) == 40 && strings.Trim(strings.ToLower(id), "0123456789abcdef") == "",
			"node id %q must be 40 hex digits (the node's `cometbft show-node-id`)", id)
		rest = hostport
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		v.check("address", false, "%q is not tcp://[node_id@]host:port", a)
		return
	}
	v.check("address", host != "", "%q has no host", a)
	v.check("address", validPort(port), "port %q must be from 1 to 65535", port)
}

func (v *validator) path(key, p string, required bool) {
	v.check(key, p != "" || !required, "must not be empty")
	v.check(key, !strings.ContainsRune(p, 0), "must not contain a NUL byte")
}

// ports checks the vsock ports. They are u32 like tmkms-light's, but kept
// to 1..65535, which every transport (vsock, and TCP in tests) can carry.
// The host listens on three of them and local mode maps all four to
// sockets in one directory, so they must be distinct.
func (v *validator) ports(c *Config) {
	seen := map[uint32]string{}
	for _, p := range []struct {
		key  string
		port uint32
	}{
		{"enclave_config_port", c.EnclaveConfigPort},
		{"enclave_state_port", c.EnclaveStatePort},
		{"enclave_tendermint_conn", c.EnclaveTendermintConn},
		{"enclave_log_port", c.EnclaveLogPort},
	} {
		v.check(p.key, p.port >= 1 && p.port <= 65535, "must be from 1 to 65535, got %d", p.port)
		if other, dup := seen[p.port]; dup {
			v.check(p.key, false, "port %d is already used by %s", p.port, other)
		}
		seen[p.port] = p.key
	}
}

// credentials checks the optional table. It never mentions the values.
func (v *validator) credentials(c *Credentials) {
	if c == nil {
		return
	}
	const hint = "; remove [credentials] to use the instance role"
	v.check("credentials.aws_key_id", c.KeyID != "", "must not be empty"+hint)
	v.check("credentials.aws_secret_key", c.SecretKey != "", "must not be empty"+hint)
}

func (v *validator) metrics(addr string) {
	if addr == "" {
		return
	}
	_, port, err := net.SplitHostPort(addr)
	v.check("metrics_address", err == nil && validPort(port), "%q is not host:port (e.g. 127.0.0.1:9100)", addr)
}

func validPort(s string) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && n > 0
}

func validProtocol(s string) bool {
	switch s {
	case "auto", "v0.34", "v0.37", "v0.38", "v0.39", "v0.40", "v1.0":
		return true
	}
	return false
}
