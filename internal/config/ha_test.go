package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/tmkms-nitro/tmkms-nitro/internal/enclaveproto"
)

// haTable is a valid [ha] table, one key a line; in minimal+haTable,
// [ha] is line 6 and lease_ttl line 12.
const haTable = `[ha]
endpoints = ['https://etcd-1.internal:2379', 'https://10.0.0.7:2379']
ca_file = 'etcd/ca.pem'
cert_file = 'etcd/signer.pem'
key_file = '/etc/tmkms/etcd/signer-key.pem'
key_prefix = '/tmkms-nitro/cosmoshub/'
lease_ttl = 15
instance = 'signer-a'
`

// withHA returns minimal and haTable changed by set: "key = value"
// replaces key's line (or is appended when haTable has no such key), and
// "-key" deletes it.
func withHA(set ...string) string {
	lines := strings.Split(strings.TrimSuffix(haTable, "\n"), "\n")
	for _, s := range set {
		key, del := strings.CutPrefix(strings.SplitN(s, " =", 2)[0], "-")
		i := lineOf(lines, key)
		switch {
		case del && i >= 0:
			lines = append(lines[:i], lines[i+1:]...)
		case i >= 0:
			lines[i] = s
		default:
			lines = append(lines, s)
		}
	}
	return minimal + strings.Join(lines, "\n") + "\n"
}

// lineOf returns the index of the line setting key, or -1.
func lineOf(lines []string, key string) int {
	for i, l := range lines {
		if strings.HasPrefix(l, key+" =") {
			return i
		}
	}
	return -1
}

// stubHostname makes hostname return name, or fail when name is "".
func stubHostname(t *testing.T, name string) {
	t.Helper()
	old := hostname
	t.Cleanup(func() { hostname = old })
	hostname = func() (string, error) {
		if name == "" {
			return "", errors.New("no host name")
		}
		return name, nil
	}
}

// findError returns the FieldError of err naming key with kind, or nil.
func findError(err error, key string, kind error) *FieldError {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var fe *FieldError
		if errors.As(e, &fe) && fe.Key == key && errors.Is(fe, kind) {
			return fe
		}
	}
	return nil
}

func TestHA(t *testing.T) {
	c, err := Parse([]byte(withHA()), "/etc/tmkms")
	if err != nil {
		t.Fatal(err)
	}
	want := &HA{
		Endpoints: []string{"https://etcd-1.internal:2379", "https://10.0.0.7:2379"},
		CAFile:    "/etc/tmkms/etcd/ca.pem",
		CertFile:  "/etc/tmkms/etcd/signer.pem",
		KeyFile:   "/etc/tmkms/etcd/signer-key.pem",
		KeyPrefix: "/tmkms-nitro/cosmoshub/",
		LeaseTTL:  15,
		Instance:  "signer-a",
	}
	if !reflect.DeepEqual(c.HA, want) {
		t.Errorf("HA:\n got %v\nwant %v", c.HA, want)
	}
	if c, err = Parse([]byte(minimal), ""); err != nil || c.HA != nil {
		t.Errorf("without [ha]: HA = %v, %v; want nil", c.HA, err)
	}
}

func TestHADefaults(t *testing.T) {
	stubHostname(t, "ip-10-0-0-5.ec2.internal")
	c, err := Parse([]byte(withHA("-key_prefix", "-lease_ttl", "-instance")), "")
	if err != nil {
		t.Fatal(err)
	}
	if h := c.HA; h.KeyPrefix != DefaultHAKeyPrefix || h.LeaseTTL != DefaultHALeaseTTL || h.Instance != "ip-10-0-0-5.ec2.internal" {
		t.Errorf("defaults: %v", h)
	}
	// Parse takes the host name when it parses: the default is not
	// decided again on every Validate.
	stubHostname(t, "other")
	if err := c.Validate(); err != nil || c.HA.Instance != "ip-10-0-0-5.ec2.internal" {
		t.Errorf("Validate: %v, instance %q", err, c.HA.Instance)
	}
}

func TestHAValid(t *testing.T) {
	sixteen := make([]string, MaxHAEndpoints)
	for i := range sixteen {
		sixteen[i] = "'https://etcd-" + string(rune('a'+i)) + ":2379'"
	}
	for _, set := range [][]string{
		{"endpoints = ['https://[fd00::7]:2379']"},
		{"endpoints = ['https://etcd:2379/', 'https://etcd:2380']"},
		{"endpoints = ['HTTPS://etcd:2379']"},
		{"endpoints = [" + strings.Join(sixteen, ", ") + "]"},
		{"key_prefix = '/'"},
		{"key_prefix = '/" + strings.Repeat("p", MaxHAKeyPrefixLen-2) + "/'"},
		{"key_prefix = '/a~b!c/d_e.f-/'"},
		{"lease_ttl = 2"},
		{"lease_ttl = 300"},
		{"instance = '" + strings.Repeat("i", MaxHAInstanceLen) + "'"},
		{"instance = 'A.b_C-9'"},
		{"cert_file = 'etcd/both.pem'", "key_file = 'etcd/both.pem'"}, // one PEM holding certificate and key
	} {
		if _, err := Parse([]byte(withHA(set...)), ""); err != nil {
			t.Errorf("%s: %v", set, err)
		}
	}
	inline := minimal + "ha = { endpoints = ['https://e:2379'], ca_file = 'c', cert_file = 'd', key_file = 'k', instance = 'i' }\n"
	if c, err := Parse([]byte(inline), ""); err != nil || c.HA == nil || c.HA.LeaseTTL != DefaultHALeaseTTL {
		t.Errorf("inline table: %v, %v", c, err)
	}
}

func TestHAInvalid(t *testing.T) {
	seventeen := strings.Repeat("'https://e:2379', ", MaxHAEndpoints) + "'https://f:2379'"
	cases := []struct {
		doc  string // withHA(doc), or a whole document when it starts with minimal
		key  string
		kind error
		msg  string // in the error, if set
	}{
		// the table itself
		{minimal + "ha = 5\n", "ha", ErrType, "line 6: ha: want a table"},
		{minimal + "ha = 'on'\n", "ha", ErrType, "want a table"},
		{minimal + "ha = []\n", "ha", ErrType, "want a table"},
		{minimal + "[[ha]]\nendpoints = ['https://e:2379']\n", "ha", ErrType, "want a table"},
		{minimal + "[ha]\n", "ha.endpoints", ErrInvalid, "lists 0 etcd client URLs"},
		{minimal + "ha = {}\n", "ha.ca_file", ErrInvalid, "must not be empty"},
		{withHA() + "[ha.tls]\nverify = false\n", "ha.tls", ErrUnknownKey, ""},
		// unknown keys and wrong types
		{"lease_tll = 3", "ha.lease_tll", ErrUnknownKey, "line 14: ha.lease_tll: unknown key (did you mean ha.lease_ttl?)"},
		{"endpoint = ['https://e:2379']", "ha.endpoint", ErrUnknownKey, "did you mean ha.endpoints?"},
		{"xyz = 1", "ha.xyz", ErrUnknownKey, "ha.xyz: unknown key"},
		{"lease_ttl = '10s'", "ha.lease_ttl", ErrType, "line 12: ha.lease_ttl: want an integer number of seconds"},
		{"lease_ttl = 1.5", "ha.lease_ttl", ErrType, ""},
		{"endpoints = 'https://e:2379'", "ha.endpoints", ErrType, "want a list of strings"},
		{"endpoints = [2379]", "ha.endpoints", ErrType, ""},
		{"ca_file = 5", "ha.ca_file", ErrType, "want a string"},
		{"instance = true", "ha.instance", ErrType, ""},
		{"key_prefix = ['/a/']", "ha.key_prefix", ErrType, ""},
		// endpoints
		{"-endpoints", "ha.endpoints", ErrInvalid, "want 1 to 16"},
		{"endpoints = []", "ha.endpoints", ErrInvalid, ""},
		{"endpoints = [" + seventeen + "]", "ha.endpoints", ErrInvalid, "lists 17"},
		{"endpoints = ['http://etcd:2379']", "ha.endpoints", ErrInvalid,
			`"http://etcd:2379": etcd must be reached over TLS (https://): the records it holds decide what the validator signs`},
		{"endpoints = ['unix:///run/etcd.sock']", "ha.endpoints", ErrInvalid, `scheme "unix" is not supported`},
		{"endpoints = ['etcd:2379']", "ha.endpoints", ErrInvalid, "has no scheme"},
		{"endpoints = ['https://etcd']", "ha.endpoints", ErrInvalid, "port from 1 to 65535"},
		{"endpoints = ['https://etcd:0']", "ha.endpoints", ErrInvalid, ""},
		{"endpoints = ['https://etcd:65536']", "ha.endpoints", ErrInvalid, ""},
		{"endpoints = ['https://:2379']", "ha.endpoints", ErrInvalid, ""},
		{"endpoints = ['https:etcd:2379']", "ha.endpoints", ErrInvalid, ""},
		{"endpoints = ['https://etcd:2379/v3']", "ha.endpoints", ErrInvalid, "has a path, query or fragment"},
		{"endpoints = ['https://etcd:2379?x=1']", "ha.endpoints", ErrInvalid, ""},
		{"endpoints = ['https://etcd:2379#']", "ha.endpoints", ErrInvalid, ""},
		{`endpoints = ["https://etcd:2379\n"]`, "ha.endpoints", ErrInvalid, ""},
		{"endpoints = ['https://root:hunter2@etcd:2379']", "ha.endpoints", ErrInvalid, "endpoint 1 must not carry user info"},
		{"endpoints = ['https://etcd:2379', 'https://ETCD:2379/']", "ha.endpoints", ErrInvalid, `"https://ETCD:2379/" is listed more than once`},
		{"endpoints = ['https://etcd:2379', 'https://etcd:02379']", "ha.endpoints", ErrInvalid, "more than once"},
		// TLS files
		{"-ca_file", "ha.ca_file", ErrInvalid, "must not be empty"},
		{"-cert_file", "ha.cert_file", ErrInvalid, "must not be empty"},
		{"key_file = ''", "ha.key_file", ErrInvalid, "must not be empty"},
		{`key_file = "k\u0000"`, "ha.key_file", ErrInvalid, "NUL"},
		// key_prefix
		{"key_prefix = ''", "ha.key_prefix", ErrInvalid, "must start and end with /"},
		{"key_prefix = 'tmkms/'", "ha.key_prefix", ErrInvalid, "must start and end with /"},
		{"key_prefix = '/tmkms'", "ha.key_prefix", ErrInvalid, "must start and end with /"},
		{"key_prefix = '/" + strings.Repeat("p", MaxHAKeyPrefixLen-1) + "/'", "ha.key_prefix", ErrInvalid, "is 129 bytes"},
		{"key_prefix = '/a b/'", "ha.key_prefix", ErrInvalid, "printable ASCII without spaces"},
		{"key_prefix = '/a\tb/'", "ha.key_prefix", ErrInvalid, "printable ASCII"},
		{"key_prefix = '/é/'", "ha.key_prefix", ErrInvalid, "printable ASCII"},
		// lease_ttl
		{"lease_ttl = 0", "ha.lease_ttl", ErrInvalid, "must be from 2 to 300 seconds, got 0"},
		{"lease_ttl = 1", "ha.lease_ttl", ErrInvalid, ""},
		{"lease_ttl = 301", "ha.lease_ttl", ErrInvalid, ""},
		{"lease_ttl = -10", "ha.lease_ttl", ErrInvalid, ""},
		// instance
		{"instance = ''", "ha.instance", ErrInvalid, ""}, // message depends on the host name: TestHAInstanceFromHostname
		{"instance = 'signer a'", "ha.instance", ErrInvalid, `"signer a" is not 1 to 64 of A-Z a-z 0-9 . _ -`},
		{"instance = 'signer/a'", "ha.instance", ErrInvalid, ""},
		{"instance = 'signér'", "ha.instance", ErrInvalid, ""},
		{"instance = '" + strings.Repeat("i", MaxHAInstanceLen+1) + "'", "ha.instance", ErrInvalid, ""},
	}
	for _, c := range cases {
		doc := c.doc
		if !strings.HasPrefix(doc, minimal) {
			doc = withHA(doc)
		}
		_, err := Parse([]byte(doc), "")
		fe := findError(err, c.key, c.kind)
		if fe == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s:\n err = %v\nwant %v naming %s, containing %q", c.doc, err, c.kind, c.key, c.msg)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: the error shows the password: %v", c.doc, err)
		}
	}
}

// TestHAInstanceFromHostname checks the host name standing in for an
// unset instance, and the error asking for instance when it cannot.
func TestHAInstanceFromHostname(t *testing.T) {
	doc := []byte(withHA("-instance"))
	for host, want := range map[string]string{
		"":                              "ha.instance: is empty and the host name is unavailable; set instance to a name unique to this signer",
		"build box":                     `ha.instance: the host name "build box" (the default) is not 1 to 64 of A-Z a-z 0-9 . _ -; set instance`,
		strings.Repeat("h", 65):         "set instance to a name unique to this signer",
		"ip-10-0-0-5.ec2.internal":      "",
		"i-0123456789abcdef0.us-east-1": "",
	} {
		stubHostname(t, host)
		c, err := Parse(doc, "")
		switch {
		case want == "" && (err != nil || c.HA.Instance != host):
			t.Errorf("host %q: %v, %v", host, c, err)
		case want != "" && (findError(err, "ha.instance", ErrInvalid) == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("host %q: err = %v\nwant %q", host, err, want)
		}
		// An empty instance is refused, never replaced by the host name.
		_, err = Parse([]byte(withHA("instance = ''")), "")
		if fe := findError(err, "ha.instance", ErrInvalid); fe == nil || host != "" && !strings.Contains(fe.Msg, "remove it to use the host name") {
			t.Errorf("host %q, instance = '': err = %v", host, err)
		}
		// A valid instance: the host name does not matter.
		if _, err := Parse([]byte(withHA()), ""); err != nil {
			t.Errorf("host %q, instance set: %v", host, err)
		}
	}
}

// TestHAAllProblemsReported checks that one run names every [ha] problem
// next to the others.
func TestHAAllProblemsReported(t *testing.T) {
	doc := "log_format = 'xml'\n" + withHA("endpoints = ['http://e:2379', 'https://f']", "-ca_file",
		"key_prefix = 'x'", "lease_ttl = 1", "instance = 'a b'")
	_, err := Parse([]byte(doc), "")
	for _, key := range []string{"ha.endpoints", "ha.ca_file", "ha.key_prefix", "ha.lease_ttl", "ha.instance", "log_format"} {
		if findError(err, key, ErrInvalid) == nil {
			t.Errorf("error does not name %s:\n%v", key, err)
		}
	}
	if n := strings.Count(err.Error(), "ha.endpoints:"); n != 2 {
		t.Errorf("%d errors about endpoints, want one for each bad one:\n%v", n, err)
	}
}

func TestHAMarshal(t *testing.T) {
	stubHostname(t, "host-1")
	for name, set := range map[string][]string{
		"full":              nil,
		"defaults":          {"-key_prefix", "-lease_ttl"},
		"instance is host":  {"-instance"},
		"quoted and listed": {"key_prefix = \"/it's/\"", "endpoints = ['https://a:1', 'https://[::1]:2', 'https://c:3/']"},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Parse([]byte(withHA(set...)), "/etc/tmkms")
			if err != nil {
				t.Fatal(err)
			}
			out, err := Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Parse(out, "/elsewhere")
			if err != nil {
				t.Fatalf("Marshal output does not parse: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(back, c) {
				t.Errorf("round trip:\n got %v\nwant %v\n%s", back, c, out)
			}
			if !strings.Contains(string(out), "\n[ha]\n") {
				t.Errorf("no [ha] table:\n%s", out)
			}
			// An instance that is the host name stays unset, so the file
			// names whichever host it is copied to.
			if explicit := strings.Contains(string(out), "\ninstance = "); explicit != (c.HA.Instance != "host-1") {
				t.Errorf("instance %q written explicitly: %t\n%s", c.HA.Instance, explicit, out)
			}
		})
	}
	out, err := Marshal(Default("r"))
	if err != nil || strings.Contains(string(out), "[ha]") || strings.Contains(string(out), "etcd") {
		t.Errorf("without HA: %v\n%s", err, out)
	}
}

// TestHAManyUnknownKeys checks that precheck counts the keys of [ha].
func TestHAManyUnknownKeys(t *testing.T) {
	var b strings.Builder
	for i := range 20 {
		b.WriteString("k" + string(rune('a'+i)) + " = 1\n")
	}
	_, err := Parse([]byte(withHA()+b.String()), "")
	if fe := findError(err, "ha.ka", ErrUnknownKey); fe == nil || !strings.Contains(fe.Msg, "and 19 more") {
		t.Errorf("err = %v", err)
	}
}

func TestAnchoredHA(t *testing.T) {
	const base = minimal + "[ha]\nendpoints = ['https://e1:2379', 'https://e2:2379']\ninstance = 'a'\n"
	c, err := Parse([]byte(base+"sealed_anchor_path = 'secrets/anchor.sealed'\n"), "/etc/tmkms")
	if err != nil {
		t.Fatal(err)
	}
	if !c.HA.Anchored() || c.HA.AnchorPort != enclaveproto.DefaultAnchorPort || c.HA.SealedAnchorPath != "/etc/tmkms/secrets/anchor.sealed" {
		t.Fatalf("anchored [ha] = %+v", c.HA)
	}
	for name, tt := range map[string]struct{ toml, key string }{
		"host credential":        {"sealed_anchor_path = 'a'\ncert_file = 'c.pem'\n", "ha.cert_file"},
		"host CA":                {"sealed_anchor_path = 'a'\nca_file = 'ca.pem'\n", "ha.ca_file"},
		"port without anchor":    {"ca_file = 'a'\ncert_file = 'b'\nkey_file = 'c'\nanchor_port = 7000\n", "ha.anchor_port"},
		"relay port collision":   {"sealed_anchor_path = 'a'\nanchor_port = 5554\n", "enclave_state_port"},
		"relay ports past 65535": {"sealed_anchor_path = 'a'\nanchor_port = 65535\n", "ha.anchor_port"},
	} {
		_, err := Parse([]byte(base+tt.toml), "")
		var fe *FieldError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%s: err = %v, want one naming %s", name, err, tt.key)
		}
	}
}
