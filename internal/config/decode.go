package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
)

// file is tmkms.toml as go-toml sees it, and the one list of its keys:
// the toml tags name them, and the want tags (or the Go types) say what
// value each takes, for error messages. Types follow tmkms-light's
// NitroSignOpt (u32 ports), so a value it refuses we refuse too.
type file struct {
	Address                any              `toml:"address" want:"a string, or a list of strings"`
	ChainID                string           `toml:"chain_id"`
	MaxHeight              any              `toml:"max_height" want:"a positive integer, or a string holding one"` // tendermint Height: a string; we also take an integer
	SealedConsensusKeyPath string           `toml:"sealed_consensus_key_path"`
	SealedIDKeyPath        string           `toml:"sealed_id_key_path"`
	StateFilePath          string           `toml:"state_file_path"`
	EnclaveConfigCID       uint32           `toml:"enclave_config_cid"`
	EnclaveConfigPort      uint32           `toml:"enclave_config_port"`
	EnclaveStatePort       uint32           `toml:"enclave_state_port"`
	EnclaveTendermintConn  uint32           `toml:"enclave_tendermint_conn"`
	EnclaveLogPort         uint32           `toml:"enclave_log_port"`
	AWSRegion              string           `toml:"aws_region"`
	Credentials            *fileCredentials `toml:"credentials"`
	KMSKeyID               string           `toml:"kms_key_id"`
	ProtocolVersion        string           `toml:"protocol_version"`
	MaxMessageSize         int              `toml:"max_message_size"`
	MetricsAddress         string           `toml:"metrics_address"`
	LogFormat              string           `toml:"log_format"`
	AllowMissingState      bool             `toml:"allow_missing_state"`
	HA                     *fileHA          `toml:"ha"`
	Validator              []fileValidator  `toml:"validator"`
}

// fileValidator is one [[validator]] table: the settings of one chain in a
// file that serves several. Optional keys are pointers, so that an absent
// one takes the default for the table's position.
type fileValidator struct {
	Address                any     `toml:"address" want:"a string, or a list of strings"`
	ChainID                string  `toml:"chain_id"`
	MaxHeight              any     `toml:"max_height" want:"a positive integer, or a string holding one"`
	SealedConsensusKeyPath string  `toml:"sealed_consensus_key_path"`
	StateFilePath          string  `toml:"state_file_path"`
	EnclaveStatePort       *uint32 `toml:"enclave_state_port"`
	EnclaveTendermintConn  *uint32 `toml:"enclave_tendermint_conn"`
	ProtocolVersion        *string `toml:"protocol_version"`
	MaxMessageSize         *int    `toml:"max_message_size"`
	AllowMissingState      bool    `toml:"allow_missing_state"`
	HA                     *fileHA `toml:"ha"`
}

// chainKeys are the keys a [[validator]] table holds: in a file with
// [[validator]] tables they may not appear at the top level, where they
// would be ambiguous.
var chainKeys = tomlNames(reflect.TypeFor[fileValidator]())

func tomlNames(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		out = append(out, t.Field(i).Tag.Get("toml"))
	}
	return out
}

type fileCredentials struct {
	KeyID        string `toml:"aws_key_id"`
	SecretKey    string `toml:"aws_secret_key"`
	SessionToken string `toml:"aws_session_token"`
}

// fileHA is the [ha] table. The optional keys are pointers so that an
// absent key takes its default while an explicit lease_ttl = 0 or
// key_prefix = "" is refused rather than silently replaced.
type fileHA struct {
	Endpoints []string `toml:"endpoints" want:"a list of strings (https://host:port)"`
	CAFile    string   `toml:"ca_file"`
	CertFile  string   `toml:"cert_file"`
	KeyFile   string   `toml:"key_file"`
	KeyPrefix *string  `toml:"key_prefix"`
	LeaseTTL  *int64   `toml:"lease_ttl" want:"an integer number of seconds"`
	Instance  *string  `toml:"instance"`
	Anchor    string   `toml:"sealed_anchor_path"`
	Port      *uint32  `toml:"anchor_port"`
}

// hostname names this signer when [ha] sets no instance; a variable so
// tests can stand in for the host.
var hostname = os.Hostname

// key is one tmkms.toml key, dotted under its table, and the value it
// takes.
type key struct{ name, want string }

// keys lists every key in the order of file's fields.
var keys = keysOf(reflect.TypeFor[file](), "")

func keysOf(t reflect.Type, prefix string) []key {
	var out []key
	for i := range t.NumField() {
		f := t.Field(i)
		name := prefix + f.Tag.Get("toml")
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct:
			out = append(out, key{name, "a table"})
			out = append(out, keysOf(ft, name+".")...)
			continue
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, key{name, "a list of tables ([[" + name + "]])"})
			out = append(out, keysOf(ft.Elem(), name+".")...)
			continue
		}
		want := f.Tag.Get("want")
		if want == "" {
			want = wantKind[ft.Kind()]
		}
		out = append(out, key{name, want})
	}
	return out
}

// wantKind says what a key of a Go kind takes, unless its want tag does.
var wantKind = map[reflect.Kind]string{
	reflect.String: "a string",
	reflect.Uint32: "an integer from 0 to 4294967295",
	reflect.Int:    "an integer",
	reflect.Bool:   "true or false",
}

// keyType describes the value key expects, for type errors; ok is false
// for unknown keys.
func keyType(name string) (want string, ok bool) {
	for _, k := range keys {
		if k.name == name {
			return k.want, true
		}
	}
	return "", false
}

// isTable reports whether name is a table, or a list of tables, of
// tmkms.toml.
func isTable(name string) bool {
	want, _ := keyType(name)
	return want == "a table" || strings.HasPrefix(want, "a list of tables")
}

// decode parses data into a Config with defaults for absent keys.
func decode(data []byte) (*Config, error) {
	f := file{
		EnclaveConfigCID:      DefaultEnclaveCID,
		EnclaveConfigPort:     enclaveproto.ConfigPort,
		EnclaveStatePort:      enclaveproto.DefaultStatePort,
		EnclaveTendermintConn: enclaveproto.DefaultValidatorPort,
		EnclaveLogPort:        enclaveproto.DefaultLogPort,
		ProtocolVersion:       DefaultProtocolVersion,
		MaxMessageSize:        DefaultMaxMessageSize,
		LogFormat:             DefaultLogFormat,
	}
	doc, err := precheck(data)
	if err != nil {
		return nil, err
	}
	d := toml.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil {
		return nil, translate(data, err)
	}
	if f.Validator != nil {
		return f.validators(doc)
	}
	h, err := maxHeight("max_height", f.MaxHeight)
	if err != nil {
		return nil, err
	}
	addrs, err := addresses("address", f.Address)
	if err != nil {
		return nil, err
	}
	c := f.config(h)
	c.Addresses = addrs
	return c, nil
}

// validators decodes a file with [[validator]] tables: the top level holds
// what the chains share, each table one chain's settings.
func (f *file) validators(doc map[string]any) (*Config, error) {
	var errs []error
	for _, k := range chainKeys {
		if _, ok := doc[k]; ok {
			errs = append(errs, &FieldError{Key: k, Kind: ErrInvalid,
				Msg: "belongs in each [[validator]] table in a file that has them"})
		}
	}
	shared := f.config(0).shared()
	for i := range f.Validator {
		c, err := f.Validator[i].config(shared, i)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		shared.Validators = append(shared.Validators, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return shared, nil
}

// config is the i-th [[validator]] table as a complete single-chain
// configuration: the shared settings and its own, with the defaults of
// its position for the ports it does not set.
func (v *fileValidator) config(shared *Config, i int) (*Config, error) {
	prefix := fmt.Sprintf("validator[%d].", i+1)
	h, err := maxHeight(prefix+"max_height", v.MaxHeight)
	if err != nil {
		return nil, err
	}
	addrs, err := addresses(prefix+"address", v.Address)
	if err != nil {
		return nil, err
	}
	c := *shared
	c.Validators = nil
	c.Addresses, c.ChainID, c.MaxHeight = addrs, v.ChainID, h
	c.SealedConsensusKeyPath, c.StateFilePath, c.AllowMissingState = v.SealedConsensusKeyPath, v.StateFilePath, v.AllowMissingState
	c.EnclaveStatePort = or(v.EnclaveStatePort, DefaultStatePort(i))
	c.EnclaveTendermintConn = or(v.EnclaveTendermintConn, DefaultValidatorPort(i))
	c.ProtocolVersion = or(v.ProtocolVersion, DefaultProtocolVersion)
	c.MaxMessageSize = or(v.MaxMessageSize, DefaultMaxMessageSize)
	if v.HA != nil {
		c.HA = v.HA.config(i)
	}
	return &c, nil
}

// or is *p, or def when p is nil.
func or[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// addresses reads address (named key in errors): one string, or a
// non-empty list of them.
func addresses(key string, v any) ([]string, error) {
	switch a := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{a}, nil
	case []any:
		out := make([]string, 0, len(a))
		for _, e := range a {
			s, ok := e.(string)
			if !ok {
				return nil, &FieldError{Key: key, Msg: "must be a string or a list of strings", Kind: ErrType}
			}
			out = append(out, s)
		}
		if len(out) == 0 {
			return nil, &FieldError{Key: key, Msg: "the list is empty", Kind: ErrInvalid}
		}
		return out, nil
	}
	return nil, &FieldError{Key: key, Msg: "must be a string or a list of strings", Kind: ErrType}
}

func (f *file) config(maxHeight int64) *Config {
	c := &Config{
		ChainID: f.ChainID, MaxHeight: maxHeight,
		SealedConsensusKeyPath: f.SealedConsensusKeyPath, SealedIDKeyPath: f.SealedIDKeyPath,
		StateFilePath: f.StateFilePath, EnclaveConfigCID: f.EnclaveConfigCID,
		EnclaveConfigPort: f.EnclaveConfigPort, EnclaveStatePort: f.EnclaveStatePort,
		EnclaveTendermintConn: f.EnclaveTendermintConn, EnclaveLogPort: f.EnclaveLogPort,
		AWSRegion: f.AWSRegion, KMSKeyID: f.KMSKeyID, ProtocolVersion: f.ProtocolVersion,
		MaxMessageSize: f.MaxMessageSize, MetricsAddress: f.MetricsAddress,
		LogFormat: f.LogFormat, AllowMissingState: f.AllowMissingState,
	}
	if f.Credentials != nil {
		c.Credentials = &Credentials{f.Credentials.KeyID, f.Credentials.SecretKey, f.Credentials.SessionToken}
	}
	if f.HA != nil {
		c.HA = f.HA.config(0)
	}
	return c
}

// config fills in the defaults, those of the i-th validator's table. A
// host name that is no valid instance name is kept as is: Validate then
// asks for instance, naming the host name, instead of decoding inventing
// one.
func (f *fileHA) config(i int) *HA {
	h := &HA{
		Endpoints: f.Endpoints, CAFile: f.CAFile, CertFile: f.CertFile, KeyFile: f.KeyFile,
		KeyPrefix: DefaultHAKeyPrefix, LeaseTTL: DefaultHALeaseTTL,
		SealedAnchorPath: f.Anchor,
	}
	switch {
	case f.Port != nil:
		h.AnchorPort = *f.Port
	case f.Anchor != "":
		h.AnchorPort = DefaultAnchorPort(i)
	}
	if f.KeyPrefix != nil {
		h.KeyPrefix = *f.KeyPrefix
	}
	if f.LeaseTTL != nil {
		h.LeaseTTL = *f.LeaseTTL
	}
	if f.Instance != nil {
		h.Instance = *f.Instance
	} else if name, err := hostname(); err == nil {
		h.Instance = name
	}
	return h
}

// maxHeight converts max_height (named key in errors), absent (nil)
// meaning no limit.
func maxHeight(key string, v any) (int64, error) {
	bad := func(msg string) error {
		return &FieldError{Key: key, Kind: ErrInvalid, Msg: msg + " (remove the key for no limit)"}
	}
	var h int64
	switch v := v.(type) {
	case nil:
		return 0, nil
	case int64:
		h = v
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, bad(fmt.Sprintf("%q is not a decimal integer", v))
		}
		h = n
	default:
		want, _ := keyType("max_height")
		return 0, &FieldError{Key: key, Kind: ErrType, Msg: "want " + want}
	}
	if h <= 0 {
		return 0, bad(fmt.Sprintf("must be positive, got %d", h))
	}
	return h, nil
}

// translate turns go-toml's errors into FieldErrors that name the key in
// TOML terms (not Go types) and never show a secret.
func translate(data []byte, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		errs := make([]error, len(strict.Errors))
		for i := range strict.Errors {
			errs[i] = unknownKey(&strict.Errors[i])
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		if bytes.Contains(data, []byte("credentials")) {
			return &FieldError{Kind: ErrSyntax, Msg: "invalid TOML (details withheld: the file holds credentials)"}
		}
		return &FieldError{Kind: ErrSyntax, Msg: err.Error()}
	}
	line, _ := de.Position()
	key := strings.Join(de.Key(), ".")
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	switch want, known := keyType(key); {
	case known && strings.Contains(msg, "already defined"):
		return &FieldError{Line: line, Key: key, Kind: ErrSyntax, Msg: "set more than once"}
	case known && strings.Contains(msg, "cannot be stored"):
		return &FieldError{Line: line, Key: key, Kind: ErrType, Msg: "out of range: want " + want}
	case known:
		return &FieldError{Line: line, Key: key, Kind: ErrType, Msg: "want " + want}
	case inCredentials(data, line):
		// go-toml's message may quote the offending text: the secret.
		return &FieldError{Line: line, Kind: ErrSyntax, Msg: "invalid TOML in [credentials] (details withheld: the line may hold a secret)"}
	}
	return &FieldError{Line: line, Key: key, Kind: ErrSyntax, Msg: msg}
}

// maxUnknownKeys bounds the unknown keys reported one by one. go-toml
// rescans the document for each to find its line, which is quadratic.
const maxUnknownKeys = 10

// precheck refuses a document with many unknown keys before the strict
// decode, listing a few of them. It returns the document as a map, for
// what the strict decode cannot see (which keys are present).
func precheck(data []byte) (map[string]any, error) {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		return nil, translate(data, err)
	}
	var unknown []string
	reported := 0
	// Only known tables are entered, so the walk is at most three deep
	// ([[validator]] then its [ha]).
	var walk func(prefix string, table map[string]any)
	walk = func(prefix string, table map[string]any) {
		for k, v := range table {
			name := prefix + k
			if _, ok := keyType(name); !ok {
				unknown = append(unknown, prefix+quoteKey(k))
				reported += reports(v, maxUnknownKeys)
				continue
			}
			if !isTable(name) {
				continue
			}
			switch t := v.(type) {
			case map[string]any:
				walk(name+".", t)
			case []any:
				for _, e := range t {
					if m, ok := e.(map[string]any); ok {
						walk(name+".", m)
					}
				}
			}
		}
	}
	walk("", doc)
	if reported <= maxUnknownKeys {
		return doc, nil
	}
	slices.Sort(unknown)
	if len(unknown) == 1 {
		msg := fmt.Sprintf("unknown key, with more than %d keys or tables under it", maxUnknownKeys)
		if s := suggest(unknown[0]); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		}
		return nil, &FieldError{Key: unknown[0], Kind: ErrUnknownKey, Msg: msg + "; is this a tmkms.toml?"}
	}
	return nil, &FieldError{Key: unknown[0], Kind: ErrUnknownKey, Msg: fmt.Sprintf(
		"unknown key, and %d more (%s, …); is this a tmkms.toml?", len(unknown)-1, strings.Join(unknown[1:min(4, len(unknown))], ", "))}
}

// quoteKey writes a key as TOML would need it written: bare when it can
// be, else quoted, so that an empty or odd key is still named visibly.
func quoteKey(k string) string {
	if k != "" && strings.IndexFunc(k, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) < 0 {
		return k
	}
	return strconv.Quote(k)
}

// reports bounds from above, up to just past limit, the errors go-toml's
// strict decode reports for an unknown key holding v: one for each key of
// a table under it, at any depth, and one for each table header (a
// repeated [[x]] or [x.k] is one key in the map but many reports). It walks with a stack:
// a dotted key can nest tables as deep as the file is long.
func reports(v any, limit int) int {
	n, stack := 0, []any{v}
	for len(stack) > 0 && n <= limit {
		v, stack = stack[len(stack)-1], stack[:len(stack)-1]
		switch v := v.(type) {
		case map[string]any:
			// Every table counts, empty or not: one declared by its own
			// header is reported on its own, and the map cannot tell
			// which were. An overcount only summarises sooner.
			n++
			for _, e := range v {
				stack = append(stack, e)
			}
		case []any:
			tables := 0
			for _, e := range v {
				if t, ok := e.(map[string]any); ok {
					stack = append(stack, t)
					tables++
				}
			}
			if tables == 0 {
				n++
			}
		default:
			n++
		}
	}
	return n
}

func unknownKey(e *toml.DecodeError) error {
	line, _ := e.Position()
	key := strings.Join(e.Key(), ".")
	msg := "unknown key"
	if s := suggest(key); s != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", s)
	}
	return &FieldError{Line: line, Key: key, Kind: ErrUnknownKey, Msg: msg}
}

// inCredentials reports whether 1-based line of data is in, or opens, the
// credentials table, or names a secret key.
func inCredentials(data []byte, line int) bool {
	lines := strings.Split(string(data), "\n")
	if line < 1 || line > len(lines) {
		return true // cannot tell: be safe
	}
	l := lines[line-1]
	if strings.Contains(l, "credentials") || strings.Contains(l, "aws_secret_key") || strings.Contains(l, "aws_session_token") {
		return true
	}
	for i := line - 1; i >= 0; i-- {
		if t := strings.TrimSpace(lines[i]); strings.HasPrefix(t, "[") {
			return strings.Contains(t, "credentials")
		}
	}
	return false
}

// suggest returns the known key closest to key if it is a likely typo.
func suggest(key string) string {
	best, bestDist := "", 3
	for _, k := range keys {
		if d := distance(key, k.name); d < bestDist {
			best, bestDist = k.name, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b, bounded for
// fuzzed input by giving up on long keys.
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			sub := prev[j-1]
			if a[i-1] != b[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev = cur
	}
	return prev[len(b)]
}
