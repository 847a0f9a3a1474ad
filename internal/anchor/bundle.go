// Package anchor is the enclave's own link to the anchor: an etcd cluster
// holding, per chain, the last decision any enclave of the validator
// committed. The enclave reads it before its first signature and advances
// it before every signature, so a host that rolls back its state file,
// starts a second enclave or drops the cluster from the configuration gets
// nothing signed that conflicts with a committed decision.
//
// TLS to etcd ends here, against the CA sealed in the Bundle, with a client
// certificate and etcd user whose secrets exist in plaintext only inside
// the enclave; the host relays bytes. The client speaks etcd's gRPC API
// (etcdserverpb.KV/Txn, etcdserverpb.Auth/Authenticate) by hand: unary
// calls over net/http's HTTP/2 client, with the few protobuf messages it
// needs encoded and decoded with protowire, so that neither etcd's client
// and API packages nor a gRPC stack have to be trusted by the enclave, and
// without the extra hop of etcd's JSON gateway.
package anchor

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// ErrBundle marks anchor settings that cannot work.
var ErrBundle = errors.New("invalid anchor settings")

// Limits of a bundle.
const (
	MaxEndpoints = 16
	maxPrefix    = 128
	maxPEM       = 16 << 10
	maxUser      = 128
)

// Bundle is everything the enclave needs to reach the anchor. The host
// never sees it in plaintext after the operator's ceremony: it is sealed by
// KMS for the enclave.
type Bundle struct {
	Endpoints []string `cbor:"endpoints"` // https://host:port of each etcd member
	CA        []byte   `cbor:"ca"`        // PEM: the only roots that verify the members
	Cert      []byte   `cbor:"cert"`      // PEM client certificate
	Key       []byte   `cbor:"key"`       // PEM client private key
	Username  string   `cbor:"username"`  // etcd user, "" if etcd auth is off
	Password  string   `cbor:"password"`
	Prefix    string   `cbor:"prefix"` // records live at <Prefix><chain id>/decision
}

// String never shows the secrets.
func (b *Bundle) String() string {
	return fmt.Sprintf("anchor.Bundle{endpoints: %v, prefix: %q, user: %q}", b.Endpoints, b.Prefix, b.Username)
}

// GoString is String, so that %#v does not print the key either.
func (b *Bundle) GoString() string { return b.String() }

// Validate checks that the bundle can be used: https endpoints, a CA, a
// matching client certificate and key, a prefix.
func (b *Bundle) Validate() error {
	if len(b.Endpoints) == 0 || len(b.Endpoints) > MaxEndpoints {
		return fmt.Errorf("%w: %d endpoints, want 1 to %d", ErrBundle, len(b.Endpoints), MaxEndpoints)
	}
	for _, e := range b.Endpoints {
		if _, err := hostPort(e); err != nil {
			return err
		}
	}
	if _, err := b.roots(); err != nil {
		return err
	}
	cert, err := b.certificate()
	if err != nil {
		return err
	}
	if b.Username != "" && cert.Leaf.Subject.CommonName != "" {
		// etcd takes a certificate's CN as the user of any call that
		// carries no token (and its JSON gateway refuses such a
		// certificate): the password user must be the only identity.
		return fmt.Errorf("%w: with an etcd user, the client certificate must have no CommonName (it has %q)", ErrBundle, cert.Leaf.Subject.CommonName)
	}
	switch {
	case b.Prefix == "" || len(b.Prefix) > maxPrefix:
		return fmt.Errorf("%w: key prefix must be 1 to %d bytes", ErrBundle, maxPrefix)
	case len(b.Username) > maxUser || len(b.Password) > maxUser:
		return fmt.Errorf("%w: etcd user name or password longer than %d bytes", ErrBundle, maxUser)
	case b.Username == "" && b.Password != "":
		return fmt.Errorf("%w: an etcd password without a user name", ErrBundle)
	}
	return nil
}

// Fingerprint identifies the anchor a consensus key is bound to: the CA
// that verifies its members and the prefix of its records. Client
// credentials and endpoints can change without it.
func (b *Bundle) Fingerprint() (string, error) {
	ca, err := firstCert(b.CA)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte("tmkms-nitro anchor v1\x00"))
	h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(b.Prefix))))
	h.Write([]byte(b.Prefix))
	h.Write(ca.Raw)
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (b *Bundle) roots() (*x509.CertPool, error) {
	if len(b.CA) > maxPEM {
		return nil, fmt.Errorf("%w: CA larger than %d bytes", ErrBundle, maxPEM)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b.CA) {
		return nil, fmt.Errorf("%w: no CA certificate in the CA PEM", ErrBundle)
	}
	return pool, nil
}

func (b *Bundle) certificate() (tls.Certificate, error) {
	if len(b.Cert) > maxPEM || len(b.Key) > maxPEM {
		return tls.Certificate{}, fmt.Errorf("%w: client certificate or key larger than %d bytes", ErrBundle, maxPEM)
	}
	c, err := tls.X509KeyPair(b.Cert, b.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: client certificate and key: %v", ErrBundle, err)
	}
	return c, nil
}

func firstCert(p []byte) (*x509.Certificate, error) {
	for {
		var blk *pem.Block
		blk, p = pem.Decode(p)
		if blk == nil {
			return nil, fmt.Errorf("%w: no CA certificate in the CA PEM", ErrBundle)
		}
		if blk.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: CA certificate: %v", ErrBundle, err)
			}
			return c, nil
		}
	}
}

// hostPort returns the host:port of an https:// endpoint.
func hostPort(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" {
		return "", fmt.Errorf("%w: endpoint %q must be https://host:port", ErrBundle, endpoint)
	}
	if strings.ContainsAny(u.Hostname(), "/ ") || net.ParseIP(u.Hostname()) == nil && u.Hostname() == "" {
		return "", fmt.Errorf("%w: endpoint %q has no host", ErrBundle, endpoint)
	}
	return u.Host, nil
}
