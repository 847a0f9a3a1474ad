package localkms_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tmkms-nitro/tmkms-nitro/internal/localkms"
)

func TestSignedRequestAccepted(t *testing.T) {
	s := start(t, localkms.Config{Dir: t.TempDir()})
	status, e := s.send(t, s.signed(t, "GenerateRandom", []byte(`{"NumberOfBytes":8}`), time.Now()))
	if status != http.StatusOK {
		t.Fatalf("status %d: %+v", status, e)
	}
}

func TestRequestRefused(t *testing.T) {
	s := start(t, localkms.Config{Dir: t.TempDir()})
	body := []byte(`{"NumberOfBytes":8}`)
	tests := []struct {
		name   string
		mutate func(*http.Request) *http.Request
		code   string
	}{
		{"no authorization", func(r *http.Request) *http.Request { r.Header.Del("Authorization"); return r }, "IncompleteSignatureException"},
		{"other algorithm", func(r *http.Request) *http.Request {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256", 1))
			return r
		}, "IncompleteSignatureException"},
		{"body changed", func(r *http.Request) *http.Request {
			b := []byte(`{"NumberOfBytes":9}`)
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
			return r
		}, "InvalidSignatureException"},
		{"target changed", func(r *http.Request) *http.Request {
			r.Header.Set("X-Amz-Target", "TrentService.CreateKey")
			return r
		}, "InvalidSignatureException"},
		{"signature changed", func(r *http.Request) *http.Request {
			a := r.Header.Get("Authorization")
			last := a[len(a)-1]
			r.Header.Set("Authorization", a[:len(a)-1]+string("01"[(last-'0'+1)%2]))
			return r
		}, "InvalidSignatureException"},
		{"session token removed", func(r *http.Request) *http.Request { r.Header.Del("X-Amz-Security-Token"); return r }, "UnrecognizedClientException"},
		{"wrong content type", func(r *http.Request) *http.Request { r.Header.Set("Content-Type", "application/json"); return r }, "SerializationException"},
		{"wrong path", func(r *http.Request) *http.Request { r.URL.Path = "/x"; return r }, "UnknownOperationException"},
		{"no target", func(r *http.Request) *http.Request { r.Header.Set("X-Amz-Target", "Other.Op"); return r }, "UnknownOperationException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, e := s.send(t, tt.mutate(s.signed(t, "GenerateRandom", body, time.Now())))
			if status != http.StatusBadRequest || e.Type != tt.code {
				t.Fatalf("got %d %+v, want 400 %s", status, e, tt.code)
			}
		})
	}
}

func TestSignatureTimeChecked(t *testing.T) {
	s := start(t, localkms.Config{Dir: t.TempDir()})
	for _, skew := range []time.Duration{-6 * time.Minute, 6 * time.Minute} {
		status, e := s.send(t, s.signed(t, "GenerateRandom", []byte(`{"NumberOfBytes":8}`), time.Now().Add(skew)))
		if status != http.StatusBadRequest || e.Type != "InvalidSignatureException" || !strings.Contains(e.Message, "expired") {
			t.Fatalf("skew %v: got %d %+v", skew, status, e)
		}
	}
}

func TestWrongRegionRefused(t *testing.T) {
	s := start(t, localkms.Config{Dir: t.TempDir(), Region: "eu-west-1"})
	req := s.signed(t, "GenerateRandom", []byte(`{"NumberOfBytes":8}`), time.Now())
	req.Header.Set("Authorization", strings.Replace(req.Header.Get("Authorization"), "/eu-west-1/", "/us-east-1/", 1))
	if status, e := s.send(t, req); e.Type != "InvalidSignatureException" {
		t.Fatalf("got %d %+v", status, e)
	}
}

func TestBodyLimit(t *testing.T) {
	s := start(t, localkms.Config{Dir: t.TempDir()})
	body := []byte(`{"NumberOfBytes":8,"x":"` + strings.Repeat("a", localkms.MaxRequestBody) + `"}`)
	status, e := s.send(t, s.signed(t, "GenerateRandom", body, time.Now()))
	if status != http.StatusBadRequest || e.Type != "ValidationException" {
		t.Fatalf("got %d %+v", status, e)
	}
}

func TestUnsupportedParameterRefused(t *testing.T) {
	s := start(t, localkms.Config{Dir: t.TempDir()})
	status, e := s.send(t, s.signed(t, "GenerateRandom", []byte(`{"NumberOfBytes":8,"CustomKeyStoreId":"cks-1"}`), time.Now()))
	if status != http.StatusBadRequest || e.Type != "UnsupportedOperationException" || !strings.Contains(e.Message, "CustomKeyStoreId") {
		t.Fatalf("got %d %+v", status, e)
	}
	status, e = s.send(t, s.signed(t, "ScheduleKeyDeletion", []byte(`{}`), time.Now()))
	if status != http.StatusBadRequest || e.Type != "UnknownOperationException" {
		t.Fatalf("got %d %+v", status, e)
	}
}
