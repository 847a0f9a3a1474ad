package config

import (
	"github.com/tmkms-nitro/tmkms-nitro/internal/atomicfile"
	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"

	"fmt"
	"strings"
	"unicode/utf8"
)

// Marshal returns c as a commented tmkms.toml that Parse reads back to an
// equal Config. It refuses an invalid c, so init never writes a file start
// would reject. Credentials, when set, are written in clear: the caller
// must create the file with mode 0600. An [ha] instance equal to the host
// name is left unset, so a file copied to another host names that host.
func Marshal(c *Config) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config: refusing to write an invalid configuration: %w", err)
	}
	w := &writer{}
	w.comment("tmkms.toml: configuration of tmkms-nitro-helper; tmkms-light's nitro-mode files work unchanged.")
	w.comment("Relative paths are resolved against the directory of this file.")
	if len(c.Validators) > 0 {
		w.validators(c)
		return []byte(w.b.String()), nil
	}
	w.blank()
	w.addresses(c)
	w.comment("The only chain the enclave signs for.")
	w.str("chain_id", c.ChainID)
	w.maxHeight(c)
	w.blank()
	w.comment("KMS-sealed keys: the consensus key, and the SecretConnection identity key (used for tcp:// only).")
	w.str("sealed_consensus_key_path", c.SealedConsensusKeyPath)
	w.optStr("sealed_id_key_path", c.SealedIDKeyPath, "secrets/id.key")
	w.state(c)
	w.blank()
	w.comment("The enclave's vsock CID (the --cid flag overrides it) and the vsock ports of the config,")
	w.comment("state, validator and log channels. The config port is built into the enclave image: it must be")
	w.comment(fmt.Sprintf("%d. A list of addresses takes validator ports enclave_tendermint_conn, +1, and so on.", enclaveproto.ConfigPort))
	w.line("enclave_config_cid = %d", c.EnclaveConfigCID)
	w.line("enclave_config_port = %d", c.EnclaveConfigPort)
	w.line("enclave_state_port = %d", c.EnclaveStatePort)
	w.line("enclave_tendermint_conn = %d", c.EnclaveTendermintConn)
	w.line("enclave_log_port = %d", c.EnclaveLogPort)
	w.blank()
	w.kms(c)
	w.blank()
	w.protocol(c)
	w.process(c)
	w.credentials(c.Credentials)
	w.ha(c.HA, "ha")
	return []byte(w.b.String()), nil
}

// validators writes a file with [[validator]] tables: what the chains
// share, then a table per chain.
func (w *writer) validators(c *Config) {
	w.comment("Several chains, one [[validator]] table each, served by one helper and one enclave. Each chain has")
	w.comment("its own double-sign state and its own host ports (by default the first table's are tmkms-light's,")
	w.comment("the next ones' enclave_state_port +1 and enclave_tendermint_conn +10 per table); tables naming the")
	w.comment("same sealed_consensus_key_path share the key, which must be sealed for all their chains.")
	w.blank()
	w.comment("The SecretConnection identity key (used for tcp:// only), shared by the chains.")
	w.optStr("sealed_id_key_path", c.SealedIDKeyPath, "secrets/id.key")
	w.comment("The enclave's vsock CID (the --cid flag overrides it), its config port (built into the enclave")
	w.comment(fmt.Sprintf("image: it must be %d) and the host's port for the enclave's logs, shared by the chains.", enclaveproto.ConfigPort))
	w.line("enclave_config_cid = %d", c.EnclaveConfigCID)
	w.line("enclave_config_port = %d", c.EnclaveConfigPort)
	w.line("enclave_log_port = %d", c.EnclaveLogPort)
	w.blank()
	w.kms(c)
	w.process(c)
	w.credentials(c.Credentials)
	for _, v := range c.Validators {
		w.blank()
		w.line("[[validator]]")
		w.addresses(v)
		w.str("chain_id", v.ChainID)
		w.maxHeight(v)
		w.comment("The KMS-sealed consensus key.")
		w.str("sealed_consensus_key_path", v.SealedConsensusKeyPath)
		w.state(v)
		w.comment("This chain's host ports: the state channel's, and the validator channel's (+1 per further address).")
		w.line("enclave_state_port = %d", v.EnclaveStatePort)
		w.line("enclave_tendermint_conn = %d", v.EnclaveTendermintConn)
		w.protocol(v)
		w.ha(v.HA, "validator.ha")
	}
}

func (w *writer) addresses(c *Config) {
	w.comment("The validator's privval listener: unix:///path, or tcp://[node_id@]host:port for a remote node")
	w.comment("(node_id pins its SecretConnection key). Must match priv_validator_laddr in the node's config.toml.")
	if len(c.Addresses) == 1 {
		w.str("address", c.Addresses[0])
	} else {
		w.list("address", c.Addresses)
	}
}

func (w *writer) maxHeight(c *Config) {
	w.comment("Refuse to sign above this height. Unset: no limit.")
	if c.MaxHeight > 0 {
		w.line("max_height = %d", c.MaxHeight)
	} else {
		w.comment("max_height = 20000000")
	}
}

func (w *writer) state(c *Config) {
	w.comment("Double-sign protection state, written by the host and checked by the enclave.")
	w.str("state_file_path", c.StateFilePath)
	w.comment("Start with an empty state when the state file is missing. Only for a brand-new validator:")
	w.comment("with an empty state the enclave can sign again what it signed before.")
	w.line("allow_missing_state = %t", c.AllowMissingState)
}

func (w *writer) kms(c *Config) {
	w.comment("AWS KMS region, and the KMS key allowed to unseal (unset: the key the sealed key file names).")
	w.str("aws_region", c.AWSRegion)
	w.optStr("kms_key_id", c.KMSKeyID, "arn:aws:kms:<region>:<account>:key/<key id>")
}

func (w *writer) protocol(c *Config) {
	w.comment("CometBFT privval dialect: auto, v0.34, v0.37, v0.38, v0.39, v0.40 or v1.0.")
	w.str("protocol_version", c.ProtocolVersion)
	w.comment(fmt.Sprintf("Largest privval message accepted, in bytes (%d to %d).", MinMaxMessageSize, MaxMaxMessageSize))
	w.line("max_message_size = %d", c.MaxMessageSize)
}

func (w *writer) process(c *Config) {
	w.comment("Prometheus metrics listener. Unset: no metrics.")
	w.optStr("metrics_address", c.MetricsAddress, "127.0.0.1:9100")
	w.comment("Log output: text or json.")
	w.str("log_format", c.LogFormat)
}

type writer struct{ b strings.Builder }

func (w *writer) line(format string, args ...any) { fmt.Fprintf(&w.b, format+"\n", args...) }
func (w *writer) comment(s string)                { w.line("# %s", s) }
func (w *writer) blank()                          { w.b.WriteString("\n") }
func (w *writer) str(key, v string)               { w.line("%s = %s", key, quote(v)) }

func (w *writer) list(key string, vs []string) {
	quoted := make([]string, len(vs))
	for i, v := range vs {
		quoted[i] = quote(v)
	}
	w.line("%s = [%s]", key, strings.Join(quoted, ", "))
}

// optStr writes key if set, else a commented-out example.
func (w *writer) optStr(key, v, example string) {
	if v == "" {
		w.comment(key + " = " + quote(example))
		return
	}
	w.str(key, v)
}

func (w *writer) credentials(c *Credentials) {
	w.blank()
	w.comment("Static AWS credentials. Unset (preferred): the instance role's, from IMDSv2.")
	if c == nil {
		w.comment("[credentials]")
		w.comment("aws_key_id = '...'")
		w.comment("aws_secret_key = '...'")
		w.comment("aws_session_token = '...'")
		return
	}
	w.line("[credentials]")
	w.str("aws_key_id", c.KeyID)
	w.str("aws_secret_key", c.SecretKey)
	if c.SessionToken != "" {
		w.str("aws_session_token", c.SessionToken)
	}
}

// ha writes the [ha] table under its name; nothing when h is nil, so a
// single-instance file reads as it always did.
func (w *writer) ha(h *HA, name string) {
	if h == nil {
		return
	}
	w.blank()
	w.comment("High availability: instances sharing the sealed key commit every signing decision to this")
	w.comment("etcd cluster before releasing the signature, so no two of them sign conflicting votes.")
	w.line("[%s]", name)
	w.comment("etcd client URLs, https:// only: the records they hold decide what the validator signs.")
	w.list("endpoints", h.Endpoints)
	if h.Anchored() {
		w.comment("The anchor: the enclave reaches etcd itself, with credentials sealed for it alone; the helper")
		w.comment("relays its connection to endpoint i on host port anchor_port+i and holds no etcd credential.")
		w.str("sealed_anchor_path", h.SealedAnchorPath)
		w.line("anchor_port = %d", h.AnchorPort)
	} else {
		w.comment("Mutual TLS: the CA that verifies the etcd servers, and this signer's client certificate and key.")
		w.str("ca_file", h.CAFile)
		w.str("cert_file", h.CertFile)
		w.str("key_file", h.KeyFile)
	}
	w.comment("Prefix of every etcd key used; validators sharing one cluster need different prefixes.")
	w.str("key_prefix", h.KeyPrefix)
	w.comment(fmt.Sprintf("Seconds an instance stays listed as alive without renewing its lease (%d to %d).", MinHALeaseTTL, MaxHALeaseTTL))
	w.line("lease_ttl = %d", h.LeaseTTL)
	w.comment("This signer's name in records, logs and metrics, unique among the instances. Unset: the host name.")
	if host, err := hostname(); err == nil && host == h.Instance {
		w.comment("instance = " + quote(h.Instance))
	} else {
		w.str("instance", h.Instance)
	}
}

// quote returns s as a TOML string: a literal string ('…', as tmkms-light's guide
// files use) when s allows it, else a basic string with TOML escapes.
// (strconv.Quote is not TOML: it emits \x and \a escapes.)
func quote(s string) string {
	literal := utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool {
		return r == '\'' || r == 0x7f || r < 0x20 && r != '\t'
	})
	if literal {
		return "'" + s + "'"
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s { // invalid UTF-8 becomes U+FFFD; Parse only yields valid UTF-8
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\u` + fmt.Sprintf("%04X", r))
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Edit loads the file at path, applies edit, validates the result and
// replaces the file durably; the file is unchanged on any error.
func Edit(path string, edit func(*Config)) error {
	c, err := Load(path)
	if err != nil {
		return err
	}
	edit(c)
	data, err := Marshal(c)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o600)
}
