package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
	"github.com/tmkms-nitro/tmkms-nitro/internal/transport"
)

// Validate checks every setting and returns all problems, joined. Each is
// a *FieldError wrapping ErrInvalid and naming its key; a [[validator]]
// table's keys are named validator[N].key.
func (c *Config) Validate() error {
	v := validator{}
	// Nitro gives enclaves CIDs from 4 up; 0-3 are the hypervisor, the
	// loopback, the host and the parent, and 2^32-1 is VMADDR_CID_ANY.
	v.check("enclave_config_cid", c.EnclaveConfigCID >= 4 && c.EnclaveConfigCID < 1<<32-1,
		"must be from 4 to 4294967294, got %d", c.EnclaveConfigCID)
	v.path("sealed_id_key_path", c.SealedIDKeyPath, c.NeedsIdentity())
	v.check("aws_region", strings.TrimSpace(c.AWSRegion) != "", "must not be empty")
	v.credentials(c.Credentials)
	v.check("kms_key_id", len(c.KMSKeyID) <= 2048 && !strings.ContainsFunc(c.KMSKeyID, unicode.IsSpace),
		"must be a key id, key ARN, alias name or alias ARN, without spaces")
	v.metrics(c.MetricsAddress)
	v.check("log_format", c.LogFormat == "text" || c.LogFormat == "json", "%q is neither text nor json", c.LogFormat)
	if len(c.Validators) > 0 {
		// Decoding leaves these empty; a caller that set them would have
		// them ignored.
		v.check("chain_id", c.ChainID == "" && len(c.Addresses) == 0 && c.HA == nil && c.StateFilePath == "" && c.SealedConsensusKeyPath == "",
			"chain settings belong in each [[validator]] table in a file that has them")
	}
	ports := v.sharedPorts(c)
	v.check("validator", len(c.Validators) <= MaxValidators, "lists %d validators, one enclave serves at most %d chains", len(c.Validators), MaxValidators)
	chains, states, addrs := map[string]string{}, map[string]string{}, map[string]string{}
	for i, ch := range c.Chains() {
		if len(c.Validators) > 0 {
			v.prefix = fmt.Sprintf("validator[%d].", i+1)
		}
		v.chain(ch)
		v.chainPorts(ch, ports)
		// One chain twice would be two double-sign guards for it; one
		// state file for two chains, one chain's record over the other's.
		if other, dup := chains[ch.ChainID]; dup && ch.ChainID != "" {
			v.check("chain_id", false, "%q is also %schain_id: each chain is served once", ch.ChainID, other)
		}
		if other, dup := states[ch.StateFilePath]; dup && ch.StateFilePath != "" {
			v.check("state_file_path", false, "%q is also %sstate_file_path: each chain needs its own state file", ch.StateFilePath, other)
		}
		chains[ch.ChainID], states[ch.StateFilePath] = v.prefix, v.prefix
		// A node runs one chain: a second chain's requests there would
		// only be refused.
		for _, a := range ch.Addresses {
			if other, dup := addrs[a]; dup && other != v.prefix {
				v.check("address", false, "%q is also %saddress: a node serves one chain", a, other)
			}
			addrs[a] = v.prefix
		}
	}
	return errors.Join(v.errs...)
}

// chain checks one chain's own settings.
func (v *validator) chain(c *Config) {
	v.addresses(c.Addresses)
	v.check("chain_id", c.ChainID != "", "must not be empty")
	v.check("chain_id", len(c.ChainID) <= MaxChainIDLen, "is %d bytes, CometBFT allows at most %d", len(c.ChainID), MaxChainIDLen)
	v.check("max_height", c.MaxHeight >= 0, "must not be negative")
	v.path("sealed_consensus_key_path", c.SealedConsensusKeyPath, true)
	v.path("state_file_path", c.StateFilePath, true)
	v.check("protocol_version", validProtocol(c.ProtocolVersion),
		"%q is not one of auto, v0.34, v0.37, v0.38, v0.39, v0.40, v1.0", c.ProtocolVersion)
	v.check("max_message_size", c.MaxMessageSize >= MinMaxMessageSize && c.MaxMessageSize <= MaxMaxMessageSize,
		"must be from %d to %d bytes, got %d", MinMaxMessageSize, MaxMaxMessageSize, c.MaxMessageSize)
	v.ha(c.HA)
}

// validator collects problems; prefix is put before every key it names
// (validator[N]. while a [[validator]] table is checked).
type validator struct {
	errs   []error
	prefix string
}

func (v *validator) check(key string, ok bool, format string, args ...any) {
	if !ok {
		v.errs = append(v.errs, &FieldError{Key: v.prefix + key, Kind: ErrInvalid, Msg: fmt.Sprintf(format, args...)})
	}
}

// addresses checks the validator addresses.
func (v *validator) addresses(addrs []string) {
	v.check("address", len(addrs) > 0, "must name the validator's privval listener")
	v.check("address", len(addrs) <= enclaveproto.MaxAddresses, "lists %d nodes, at most %d are served", len(addrs), enclaveproto.MaxAddresses)
	for _, s := range addrs {
		if _, err := transport.ParseValidator(s); err != nil {
			v.check("address", false, "%s", strings.TrimPrefix(err.Error(), "transport: "))
		}
	}
}

func (v *validator) path(key, p string, required bool) {
	v.check(key, p != "" || !required, "must not be empty")
	v.check(key, !strings.ContainsRune(p, 0), "must not contain a NUL byte")
}

// portUse is one port the layout takes: key is the setting a collision
// is reported against, name the port as the message shows it.
type portUse struct {
	key, name string
	port      uint32
}

// sharedPorts checks the ports every chain shares and returns the layout
// so far, for chainPorts to add each chain's to. Ports are u32 like
// tmkms-light's, but kept to 1..65535, which every transport (vsock, and
// unix sockets named by port in local mode) can carry. The host listens
// on the log port, on each chain's state port, on one validator port per
// address, on one relay port per etcd endpoint with an anchor, and on the
// KMS proxy's, so no two of them may be one port. The config port is the
// enclave's own, but is kept apart too, so that one number names one
// channel.
func (v *validator) sharedPorts(c *Config) map[uint32]portUse {
	v.check("enclave_config_port", c.EnclaveConfigPort == enclaveproto.ConfigPort,
		"must be %d, got %d: the enclave listens for its configuration before it has one, on the port built into its measured image", enclaveproto.ConfigPort, c.EnclaveConfigPort)
	v.check("enclave_log_port", c.EnclaveLogPort >= 1 && c.EnclaveLogPort <= 65535, "must be from 1 to 65535, got %d", c.EnclaveLogPort)
	seen := map[uint32]portUse{enclaveproto.KMSProxyPort: {"", fmt.Sprintf("the KMS proxy's port (%d, fixed)", enclaveproto.KMSProxyPort), enclaveproto.KMSProxyPort}}
	v.usePorts(seen, []portUse{
		{"enclave_config_port", "enclave_config_port", c.EnclaveConfigPort},
		{"enclave_log_port", "enclave_log_port", c.EnclaveLogPort},
	})
	return seen
}

// chainPorts checks one chain's ports against the layout seen so far.
func (v *validator) chainPorts(c *Config, seen map[uint32]portUse) {
	p := v.prefix
	uses := []portUse{
		{"enclave_state_port", p + "enclave_state_port", c.EnclaveStatePort},
		{"enclave_tendermint_conn", p + "enclave_tendermint_conn", c.EnclaveTendermintConn},
	}
	for _, u := range uses {
		v.check(u.key, u.port >= 1 && u.port <= 65535, "must be from 1 to 65535, got %d", u.port)
	}
	v.check("enclave_tendermint_conn", int(c.EnclaveTendermintConn)+len(c.Addresses) <= 65536,
		"must leave room for one port per address below 65536, got %d", c.EnclaveTendermintConn)
	for i := 1; i < len(c.Addresses); i++ {
		uses = append(uses, portUse{"address", fmt.Sprintf("%senclave_tendermint_conn+%d (address %d)", p, i, i+1), c.EnclaveTendermintConn + uint32(i)})
	}
	if h := c.HA; h.Anchored() {
		for i := range h.Endpoints {
			uses = append(uses, portUse{"ha.anchor_port", fmt.Sprintf("%sha.anchor_port+%d (endpoint %d)", p, i, i+1), h.AnchorPort + uint32(i)})
		}
	}
	v.usePorts(seen, uses)
}

// usePorts adds uses to the layout, reporting each port taken twice.
func (v *validator) usePorts(seen map[uint32]portUse, uses []portUse) {
	for _, u := range uses {
		if other, dup := seen[u.port]; dup {
			v.check(u.key, false, "port %d is both %s and %s", u.port, other.name, u.name)
			continue
		}
		seen[u.port] = u
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

// ha checks the optional [ha] table.
func (v *validator) ha(h *HA) {
	if h == nil {
		return
	}
	v.check("ha.endpoints", len(h.Endpoints) >= 1 && len(h.Endpoints) <= MaxHAEndpoints,
		"lists %d etcd client URLs, want 1 to %d", len(h.Endpoints), MaxHAEndpoints)
	seen := map[string]bool{}
	for i, e := range h.Endpoints {
		hostport := v.endpoint(i, e)
		if hostport == "" {
			continue
		}
		v.check("ha.endpoints", !seen[hostport], "%q is listed more than once", e)
		seen[hostport] = true
	}
	if h.Anchored() {
		// The enclave is the only etcd client: a credential here would
		// let the host rewrite the records that hold the enclaves back.
		const why = "must be absent with sealed_anchor_path: the enclave holds the etcd credentials, the host must not"
		v.check("ha.ca_file", h.CAFile == "", why)
		v.check("ha.cert_file", h.CertFile == "", why)
		v.check("ha.key_file", h.KeyFile == "", why)
		v.path("ha.sealed_anchor_path", h.SealedAnchorPath, true)
		v.check("ha.anchor_port", h.AnchorPort >= 1 && int(h.AnchorPort)+len(h.Endpoints) <= 65536,
			"must leave room for one port per endpoint below 65536, got %d", h.AnchorPort)
	} else {
		// etcd is reached over mutual TLS only: there is no setting
		// without a client certificate to fall back to.
		v.path("ha.ca_file", h.CAFile, true)
		v.path("ha.cert_file", h.CertFile, true)
		v.path("ha.key_file", h.KeyFile, true)
		v.check("ha.anchor_port", h.AnchorPort == 0, "is only used with sealed_anchor_path")
	}
	v.keyPrefix(h.KeyPrefix)
	// Under 2 s a garbage-collection pause or a network blip drops a live
	// instance; over 5 min a dead one stays listed as alive for minutes.
	v.check("ha.lease_ttl", h.LeaseTTL >= MinHALeaseTTL && h.LeaseTTL <= MaxHALeaseTTL,
		"must be from %d to %d seconds, got %d", MinHALeaseTTL, MaxHALeaseTTL, h.LeaseTTL)
	v.instance(h.Instance)
}

// endpoint checks the i-th etcd client URL and returns its host and port
// normalised, to spot the same server listed twice; "" when e is invalid.
func (v *validator) endpoint(i int, e string) string {
	const want = "want https://host:port"
	show := strconv.Quote(e)
	if strings.Contains(e, "@") {
		show = fmt.Sprintf("endpoint %d", i+1) // user info may hold a password
	}
	u, err := url.Parse(e)
	switch {
	case !strings.Contains(e, "://"):
		v.check("ha.endpoints", false, "%s has no scheme; %s", show, want)
	case err != nil:
		v.check("ha.endpoints", false, "%s is not a URL; %s", show, want)
	case u.Scheme == "http":
		v.check("ha.endpoints", false, "%s: etcd must be reached over TLS (https://): "+
			"the records it holds decide what the validator signs", show)
	case u.Scheme != "https":
		v.check("ha.endpoints", false, "%s: scheme %q is not supported; %s", show, u.Scheme, want)
	case u.User != nil:
		v.check("ha.endpoints", false, "%s must not carry user info: etcd knows this signer by its client certificate", show)
	case u.Path != "" && u.Path != "/" || strings.ContainsAny(e, "?#"):
		v.check("ha.endpoints", false, "%s has a path, query or fragment; %s", show, want)
	default:
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil || host == "" || !validPort(port) {
			v.check("ha.endpoints", false, "%s is not https://host:port with a port from 1 to 65535", show)
			return ""
		}
		n, _ := strconv.ParseUint(port, 10, 16)
		return net.JoinHostPort(strings.ToLower(host), strconv.FormatUint(n, 10))
	}
	return ""
}

// keyPrefix checks key_prefix. The closing / keeps one deployment's
// prefix from being the start of another's (/tmkms would also cover
// /tmkms-test/), and the narrow alphabet lets it go unquoted into etcdctl
// role grants and log lines.
func (v *validator) keyPrefix(p string) {
	v.check("ha.key_prefix", strings.HasPrefix(p, "/") && strings.HasSuffix(p, "/"),
		"%q must start and end with / (e.g. %s)", p, DefaultHAKeyPrefix)
	v.check("ha.key_prefix", len(p) <= MaxHAKeyPrefixLen, "is %d bytes, at most %d are allowed", len(p), MaxHAKeyPrefixLen)
	v.check("ha.key_prefix", !strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r > '~' }),
		"%q must be printable ASCII without spaces", p)
}

// instance checks the instance name. It goes into etcd records, log
// lines and metric labels, hence the narrow alphabet.
func (v *validator) instance(name string) {
	if validInstance(name) {
		return
	}
	want := fmt.Sprintf("1 to %d of A-Z a-z 0-9 . _ -", MaxHAInstanceLen)
	const set = "set instance to a name unique to this signer"
	switch host, _ := hostname(); {
	case name == "" && host != "":
		v.check("ha.instance", false, "must not be empty (remove it to use the host name)")
	case name == "":
		v.check("ha.instance", false, "is empty and the host name is unavailable; "+set)
	case name == host:
		v.check("ha.instance", false, "the host name %q (the default) is not %s; "+set, name, want)
	default:
		v.check("ha.instance", false, "%q is not %s", name, want)
	}
}

func validInstance(s string) bool {
	return len(s) >= 1 && len(s) <= MaxHAInstanceLen && !strings.ContainsFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-')
	})
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
