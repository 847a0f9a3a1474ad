package localkms

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/tmkms-nitro/tmkms-nitro/internal/localca"
)

// Limits on what a client can make the server hold or wait for.
const (
	// MaxRequestBody bounds a request body: a 262144-byte attestation
	// document is about 350 KiB in base64.
	MaxRequestBody = 1 << 20
	readTimeout    = 30 * time.Second
	writeTimeout   = 30 * time.Second
	idleTimeout    = 2 * time.Minute
	maxHeaderBytes = 64 << 10
)

// Config configures New. Dir is required; the rest have defaults.
type Config struct {
	// Dir holds the server's state (TLS root, credentials, keys). It is
	// created with mode 0700 if missing.
	Dir string
	// TrustedRoots are the attestation roots a Recipient's document must
	// chain to, e.g. the software NSM's root. Empty means requests with a
	// Recipient are refused: the AWS root is never trusted implicitly.
	TrustedRoots []*x509.Certificate
	// Hostnames are extra DNS names or IP addresses for the server
	// certificate, besides localhost, 127.0.0.1 and ::1.
	Hostnames []string
	// Region, AccountID and Partition shape ARNs and the SigV4 scope:
	// "us-east-1", "111122223333" and "aws" if empty.
	Region, AccountID, Partition string
	// RoleName is the role the instance role's credentials are a session
	// of: "tmkms-local" if empty. Only used when credentials are first
	// issued.
	RoleName string
	// AdminUserName is the IAM user the administrator's credentials
	// belong to: "tmkms-admin" if empty. Only used when they are first
	// issued.
	AdminUserName string
	// Now is the clock for SigV4 skew and attestation validity: time.Now if nil.
	Now func() time.Time
	// Logger receives one line per request; nothing if nil.
	Logger *slog.Logger
}

// Server is a local KMS. Create it with New, then call Serve.
type Server struct {
	cfg    Config
	creds  Credentials // the instance role's
	admin  Credentials // the administrator's
	ca     *localca.Cert
	cert   tls.Certificate
	signer *v4.Signer
	log    *slog.Logger
	http   *http.Server

	mu   sync.Mutex
	keys map[string]*key // by key ID; a *key is never modified once stored
}

// New loads the server's state from cfg.Dir, creating it on first use.
func New(cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("localkms: no data directory given")
	}
	cfg = withDefaults(cfg)
	if err := makePrivateDir(cfg.Dir); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, signer: v4.NewSigner(), log: cfg.Logger}
	var err error
	if s.ca, err = loadOrCreateCA(cfg.Dir, cfg.Now()); err != nil {
		return nil, err
	}
	if s.cert, err = issueServerCert(s.ca, cfg.Hostnames, cfg.Now()); err != nil {
		return nil, err
	}
	if s.creds, s.admin, err = loadOrIssueCredentials(cfg.Dir, cfg); err != nil {
		return nil, err
	}
	if s.keys, err = s.loadKeys(); err != nil {
		return nil, err
	}
	s.http = &http.Server{
		Handler:           s,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{s.cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: readTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

func withDefaults(cfg Config) Config {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&cfg.Region, "us-east-1")
	def(&cfg.AccountID, "111122223333")
	def(&cfg.Partition, "aws")
	def(&cfg.RoleName, "tmkms-local")
	def(&cfg.AdminUserName, "tmkms-admin")
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// Serve accepts TLS connections on ln until Close or Shutdown, then returns
// nil. ln is a plain listener; Serve adds TLS.
func (s *Server) Serve(ln net.Listener) error {
	err := s.http.ServeTLS(ln, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("localkms: %w", err)
}

// Shutdown stops accepting connections and waits for requests in flight.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }

// Close stops the server at once, closing every connection.
func (s *Server) Close() error { return s.http.Close() }

// RootPEM returns the TLS root certificate clients must trust, in PEM.
func (s *Server) RootPEM() []byte { return s.ca.CertPEM() }

// Root returns the TLS root certificate clients must trust.
func (s *Server) Root() *x509.Certificate { return s.ca.Certificate }

// RootFile returns the path of the PEM file holding Root.
func (s *Server) RootFile() string { return filepath.Join(s.cfg.Dir, RootFile) }

// Credentials returns the instance role's credentials: what the enclave and
// the host use, and what key policies name as the role.
func (s *Server) Credentials() Credentials { return s.creds }

// AdminCredentials returns the administrator's credentials (an IAM user of
// the account), for creating keys, setting their policies and importing a
// key with Encrypt, which a key policy from kmspolicy.Seed refuses the role.
func (s *Server) AdminCredentials() Credentials { return s.admin }

// CredentialsFile returns the path of the JSON file holding both sets of
// credentials.
func (s *Server) CredentialsFile() string { return filepath.Join(s.cfg.Dir, CredentialsFile) }

// Region returns the region in the server's ARNs and SigV4 scope.
func (s *Server) Region() string { return s.cfg.Region }

// ServeHTTP handles one KMS API call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.cfg.Now()
	id := requestID()
	w.Header().Set("X-Amzn-RequestId", id)
	op, resp, err := s.handle(w, r)
	attrs := []any{"op", op, "request_id", id, "duration", s.cfg.Now().Sub(start)}
	var ae *apiError
	switch {
	case err == nil:
		writeResponse(w, http.StatusOK, resp)
		s.log.Info("localkms: request", attrs...)
	case errors.As(err, &ae):
		writeError(w, ae)
		s.log.Info("localkms: request refused", append(attrs, "error", ae.Error())...)
	default:
		writeError(w, errInternal)
		s.log.Error("localkms: request failed", append(attrs, "error", err.Error())...)
	}
}

// handle checks the request's framing and signature, then runs the
// operation.
func (s *Server) handle(w http.ResponseWriter, r *http.Request) (string, any, error) {
	op, ok := operationName(r.Header.Get("X-Amz-Target"))
	if r.Method != http.MethodPost || r.URL.Path != "/" || !ok {
		return op, nil, errUnknownOperation("Expected POST / with X-Amz-Target: TrentService.<Operation>.")
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		return op, nil, errSerialization("Unsupported Content-Type %q; expected application/x-amz-json-1.1.", ct)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBody))
	if err != nil {
		return op, nil, errValidation("The request body could not be read or is larger than %d bytes.", MaxRequestBody)
	}
	principal, err := s.authenticate(r, body)
	if err != nil {
		return op, nil, err
	}
	run, ok := operation(op)
	if !ok {
		return op, nil, errUnknownOperation("The local KMS does not implement %s.", op)
	}
	resp, err := run(s, principal, body)
	return op, resp, err
}

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail
	return hex.EncodeToString(b[:])
}
