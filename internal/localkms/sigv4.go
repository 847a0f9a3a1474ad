package localkms

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

const (
	sigAlgorithm = "AWS4-HMAC-SHA256"
	amzDateFmt   = "20060102T150405Z"
	// maxSkew is how far X-Amz-Date may be from the server's clock, as AWS
	// allows.
	maxSkew = 5 * time.Minute
)

// authorization is a parsed SigV4 Authorization header.
type authorization struct {
	accessKeyID, date, region, service string
	signedHeaders                      []string
}

func parseAuthorization(h string) (*authorization, error) {
	incomplete := errIncompleteSignature("Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters with algorithm %s.", sigAlgorithm)
	rest, ok := strings.CutPrefix(h, sigAlgorithm+" ")
	if !ok {
		return nil, incomplete
	}
	params := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, incomplete
		}
		params[k] = v
	}
	scope := strings.Split(params["Credential"], "/")
	if len(scope) != 5 || scope[4] != "aws4_request" || params["SignedHeaders"] == "" || params["Signature"] == "" {
		return nil, incomplete
	}
	return &authorization{
		accessKeyID: scope[0], date: scope[1], region: scope[2], service: scope[3],
		signedHeaders: strings.Split(params["SignedHeaders"], ";"),
	}, nil
}

// authenticate checks r's SigV4 signature over body and returns the
// principal the credentials map to: the instance role's session or the
// administrator. It recomputes the Authorization header with the SDK's own
// signer, over only the headers the client signed, and compares the whole
// header in constant time.
func (s *Server) authenticate(r *http.Request, body []byte) (string, error) {
	auth, err := parseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return "", err
	}
	creds, ok := s.credentialsFor(auth.accessKeyID)
	if !ok {
		return "", errUnrecognizedClient("The security token included in the request is invalid.")
	}
	// The administrator's credentials have no token: the header must then
	// be absent, as the SDK sends none.
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Amz-Security-Token")), []byte(creds.SessionToken)) != 1 {
		return "", errUnrecognizedClient("The security token included in the request is invalid.")
	}
	signedAt, err := s.checkScope(r, auth, creds.SessionToken != "")
	if err != nil {
		return "", err
	}
	want, err := s.resign(r, body, creds, auth.signedHeaders, signedAt)
	if err != nil {
		return "", err
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) != 1 {
		return "", errInvalidSignature("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
	}
	return creds.Principal, nil
}

// credentialsFor returns the issued credentials with the access key ID id.
// Access key IDs are not secret; the comparison is constant-time anyway.
func (s *Server) credentialsFor(id string) (Credentials, bool) {
	for _, c := range []Credentials{s.creds, s.admin} {
		if subtle.ConstantTimeCompare([]byte(id), []byte(c.AccessKeyID)) == 1 {
			return c, true
		}
	}
	return Credentials{}, false
}

// checkScope checks the signing time and credential scope, and that the
// headers that give a request its meaning are signed, the session token
// among them when the credentials have one.
func (s *Server) checkScope(r *http.Request, auth *authorization, token bool) (time.Time, error) {
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse(amzDateFmt, amzDate)
	if err != nil {
		return time.Time{}, errIncompleteSignature("Authorization requires a valid X-Amz-Date header.")
	}
	now := s.cfg.Now()
	if d := now.Sub(t); d > maxSkew || d < -maxSkew {
		return time.Time{}, errInvalidSignature("Signature expired: %s is not within %v of the local KMS time %s.", amzDate, maxSkew, now.UTC().Format(amzDateFmt))
	}
	if auth.date != t.Format("20060102") || auth.service != "kms" || auth.region != s.cfg.Region {
		return time.Time{}, errInvalidSignature("Credential should be scoped to a valid date, region %q and service \"kms\".", s.cfg.Region)
	}
	required := []string{"host", "x-amz-date", "x-amz-target"}
	if token {
		required = append(required, "x-amz-security-token")
	}
	for _, h := range required {
		if !slices.Contains(auth.signedHeaders, h) {
			return time.Time{}, errInvalidSignature("Header %q must be signed.", h)
		}
	}
	return t, nil
}

// resign signs a copy of r with creds, carrying only the headers listed as
// signed, and returns the Authorization header the client should have sent.
func (s *Server) resign(r *http.Request, body []byte, creds Credentials, signed []string, at time.Time) (string, error) {
	c := &http.Request{
		Method: r.Method,
		URL:    &url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery},
		Host:   r.Host,
		Header: http.Header{},
	}
	for _, h := range signed {
		switch h {
		case "host":
		case "content-length":
			c.ContentLength = r.ContentLength
		default:
			vals := r.Header.Values(h)
			if len(vals) == 0 {
				return "", errInvalidSignature("Signed header %q is missing from the request.", h)
			}
			c.Header[http.CanonicalHeaderKey(h)] = vals
		}
	}
	sum := sha256.Sum256(body)
	err := s.signer.SignHTTP(r.Context(), creds.AWS(), c, hex.EncodeToString(sum[:]), "kms", s.cfg.Region, at)
	if err != nil {
		return "", errInvalidSignature("The request cannot be signed for verification: %v", err)
	}
	return c.Header.Get("Authorization"), nil
}
