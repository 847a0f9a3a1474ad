package anchor

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The hand-written messages against etcd's generated types (a test
// dependency only: the enclave does not link them).

func TestTxnRequestInterop(t *testing.T) {
	for _, rev := range []int64{-1, 0, 1, 1 << 40} {
		for _, value := range [][]byte{nil, []byte("record"), bytes.Repeat([]byte{0xff}, 300)} {
			key := []byte("/tmkms-nitro/chain/decision")
			var got etcdserverpb.TxnRequest
			if err := proto.Unmarshal(encodeTxnRequest(key, value, rev), &got); err != nil {
				t.Fatalf("rev %d: etcd cannot decode the request: %v", rev, err)
			}
			want := &etcdserverpb.TxnRequest{
				Compare: []*etcdserverpb.Compare{{Result: etcdserverpb.Compare_EQUAL, Target: etcdserverpb.Compare_MOD,
					Key: key, TargetUnion: &etcdserverpb.Compare_ModRevision{ModRevision: rev}}},
				Success: []*etcdserverpb.RequestOp{{Request: &etcdserverpb.RequestOp_RequestPut{RequestPut: &etcdserverpb.PutRequest{Key: key, Value: value}}}},
				Failure: []*etcdserverpb.RequestOp{{Request: &etcdserverpb.RequestOp_RequestRange{RequestRange: &etcdserverpb.RangeRequest{Key: key}}}},
			}
			if !proto.Equal(&got, want) {
				t.Fatalf("rev %d: etcd decodes\n%v\nwant\n%v", rev, &got, want)
			}
			ref, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if enc := encodeTxnRequest(key, value, rev); !bytes.Equal(enc, ref) {
				t.Errorf("rev %d: bytes differ from etcd's encoding\n got %x\nwant %x", rev, enc, ref)
			}
		}
	}
}

func TestAuthenticateRequestInterop(t *testing.T) {
	for _, u := range [][2]string{{"tmkms-signer", "secret"}, {"u", ""}, {"ü\x00", strings.Repeat("p", 128)}} {
		var got etcdserverpb.AuthenticateRequest
		if err := proto.Unmarshal(encodeAuthenticateRequest(u[0], u[1]), &got); err != nil {
			t.Fatal(err)
		}
		if got.Name != u[0] || got.Password != u[1] {
			t.Fatalf("etcd decodes %q %q, want %q %q", got.Name, got.Password, u[0], u[1])
		}
	}
}

func TestTxnResponseInterop(t *testing.T) {
	kv := func(k, v string, mod int64) *mvccpb.KeyValue {
		return &mvccpb.KeyValue{Key: []byte(k), Value: []byte(v), ModRevision: mod, CreateRevision: 2, Version: 7, Lease: 9}
	}
	rangeOp := func(kvs ...*mvccpb.KeyValue) *etcdserverpb.ResponseOp {
		return &etcdserverpb.ResponseOp{Response: &etcdserverpb.ResponseOp_ResponseRange{ResponseRange: &etcdserverpb.RangeResponse{
			Header: &etcdserverpb.ResponseHeader{Revision: 99}, Kvs: kvs, More: true, Count: int64(len(kvs))}}}
	}
	header := &etcdserverpb.ResponseHeader{ClusterId: 1, MemberId: 2, Revision: 42, RaftTerm: 3}
	for name, tc := range map[string]struct {
		in   *etcdserverpb.TxnResponse
		want txnResponse
	}{
		"succeeded": {
			in: &etcdserverpb.TxnResponse{Header: header, Succeeded: true, Responses: []*etcdserverpb.ResponseOp{
				{Response: &etcdserverpb.ResponseOp_ResponsePut{ResponsePut: &etcdserverpb.PutResponse{Header: header}}}}},
			want: txnResponse{hasHeader: true, revision: 42, succeeded: true, responses: []responseOp{{}}},
		},
		"failed, record read": {
			in:   &etcdserverpb.TxnResponse{Header: header, Responses: []*etcdserverpb.ResponseOp{rangeOp(kv("k", "v", 17), kv("k2", "v2", 18))}},
			want: txnResponse{hasHeader: true, revision: 42, responses: []responseOp{{rng: &rangeResponse{kvs: []keyValue{{[]byte("k"), []byte("v"), 17}, {[]byte("k2"), []byte("v2"), 18}}}}}},
		},
		"failed, no record": {
			in:   &etcdserverpb.TxnResponse{Header: header, Responses: []*etcdserverpb.ResponseOp{rangeOp()}},
			want: txnResponse{hasHeader: true, revision: 42, responses: []responseOp{{rng: &rangeResponse{}}}},
		},
		"empty": {in: &etcdserverpb.TxnResponse{}},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := proto.Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeTxnResponse(b)
			if err != nil {
				t.Fatal(err)
			}
			if !equalTxn(got, &tc.want) {
				t.Fatalf("decoded %+v, want %+v", got, tc.want)
			}
		})
	}
}

func equalTxn(a, b *txnResponse) bool {
	if a.hasHeader != b.hasHeader || a.revision != b.revision || a.succeeded != b.succeeded || len(a.responses) != len(b.responses) {
		return false
	}
	for i := range a.responses {
		ra, rb := a.responses[i].rng, b.responses[i].rng
		if (ra == nil) != (rb == nil) || ra != nil && len(ra.kvs) != len(rb.kvs) {
			return false
		}
		for j := 0; ra != nil && j < len(ra.kvs); j++ {
			x, y := ra.kvs[j], rb.kvs[j]
			if !bytes.Equal(x.key, y.key) || !bytes.Equal(x.value, y.value) || x.modRevision != y.modRevision {
				return false
			}
		}
	}
	return true
}

func TestAuthenticateResponseInterop(t *testing.T) {
	for _, token := range []string{"", "abc.123", strings.Repeat("t", 2000)} {
		b, err := proto.Marshal(&etcdserverpb.AuthenticateResponse{Header: &etcdserverpb.ResponseHeader{Revision: 5}, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeAuthenticateResponse(b)
		if err != nil || got != token {
			t.Fatalf("decoded %q %v, want %q", got, err, token)
		}
	}
}

// TestMalformed: input that is not the message expected is an error.
func TestMalformed(t *testing.T) {
	tag := func(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }
	for name, b := range map[string][]byte{
		"truncated tag":           {0x80},
		"truncated length":        append(tag(txnRespHeader, protowire.BytesType), 0x80),
		"length past the end":     append(tag(txnRespHeader, protowire.BytesType), 5, 1),
		"field number 0":          {0x02, 0x00},
		"varint for a message":    append(tag(txnRespHeader, protowire.VarintType), 1),
		"bytes for a bool":        append(tag(txnRespSucceeded, protowire.BytesType), 0),
		"negative revision":       append(tag(txnRespHeader, protowire.BytesType), append([]byte{11}, protowire.AppendVarint(tag(headerRevision, protowire.VarintType), 1<<63)...)...),
		"malformed inner message": append(tag(txnRespResponses, protowire.BytesType), 2, 0x0a, 0x05),
		"unterminated group":      tag(9, protowire.StartGroupType),
	} {
		if _, err := decodeTxnResponse(b); !errors.Is(err, errMalformed) {
			t.Errorf("%s: %v, want a malformed-protobuf error", name, err)
		}
	}
	if _, err := decodeAuthenticateResponse(append(tag(authRespToken, protowire.Fixed32Type), 1, 2, 3, 4)); !errors.Is(err, errMalformed) {
		t.Errorf("fixed32 token: %v, want a malformed-protobuf error", err)
	}
}

// TestUnknownFieldsSkipped: fields etcd may add, of every wire type, are
// skipped.
func TestUnknownFieldsSkipped(t *testing.T) {
	b, _ := proto.Marshal(&etcdserverpb.AuthenticateResponse{Token: "tok"})
	b = protowire.AppendTag(b, 100, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, 1)
	b = protowire.AppendTag(b, 101, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, 1)
	b = protowire.AppendTag(b, 102, protowire.StartGroupType)
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 1)
	b = protowire.AppendTag(b, 102, protowire.EndGroupType)
	b = protowire.AppendTag(b, 103, protowire.BytesType)
	b = protowire.AppendBytes(b, []byte("x"))
	if tok, err := decodeAuthenticateResponse(b); err != nil || tok != "tok" {
		t.Fatalf("%q %v", tok, err)
	}
}

func TestFrame(t *testing.T) {
	msg := []byte("message")
	if got, err := unframe(frame(msg)); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("unframe(frame) = %q %v", got, err)
	}
	for name, b := range map[string][]byte{
		"short":          {0, 0, 0},
		"compressed":     {1, 0, 0, 0, 0},
		"truncated":      {0, 0, 0, 0, 5, 1},
		"two messages":   append(frame(msg), frame(msg)...),
		"huge length":    {0, 0xff, 0xff, 0xff, 0xff},
		"trailing bytes": append(frame(msg), 0),
	} {
		if _, err := unframe(b); err == nil {
			t.Errorf("%s: unframe accepted %x", name, b)
		}
	}
}

func TestStatus(t *testing.T) {
	resp := func(header, trailer http.Header) *http.Response {
		return &http.Response{Header: header, Trailer: trailer}
	}
	if err := status(resp(http.Header{}, http.Header{"Grpc-Status": {"0"}})); err != nil {
		t.Fatal(err)
	}
	err := status(resp(http.Header{}, http.Header{"Grpc-Status": {"7"}, "Grpc-Message": {"etcdserver: permission%20denied"}}))
	var re *rpcError
	if !errors.As(err, &re) || re.Code != codePermissionDenied || !strings.Contains(err.Error(), "permission denied") || re.staleToken() {
		t.Fatalf("permission denied: %v", err)
	}
	// A trailers-only response carries the status in its headers.
	err = status(resp(http.Header{"Grpc-Status": {"16"}, "Grpc-Message": {"etcdserver: invalid auth token"}}, nil))
	if !errors.As(err, &re) || !re.staleToken() {
		t.Fatalf("invalid token: %v", err)
	}
	for _, h := range []http.Header{{}, {"Grpc-Status": {"x"}}, {"Grpc-Status": {"-1"}}} {
		if err := status(resp(h, nil)); err == nil || errors.As(err, &re) {
			t.Errorf("status %v: %v, want a malformed-status error", h, err)
		}
	}
	if m := statusMessage("a%0Ab\x00%zz"); strings.ContainsAny(m, "\n\x00") {
		t.Errorf("statusMessage kept control characters: %q", m)
	}
}

func TestGRPCTimeout(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "1m", 0: "1m", 1500 * time.Microsecond: "1m", 3 * time.Second: "3000m",
		30 * time.Hour: "108000S", 1e6 * time.Hour: "99999999S",
	} {
		if got := grpcTimeout(d); got != want {
			t.Errorf("grpcTimeout(%v) = %q, want %q", d, got, want)
		}
	}
}

// FuzzDecodeResponse feeds arbitrary response bodies to the decoders: they
// may refuse them, never panic, and what they accept is what etcd's own
// types read.
func FuzzDecodeResponse(f *testing.F) {
	for _, m := range []proto.Message{
		&etcdserverpb.TxnResponse{Header: &etcdserverpb.ResponseHeader{Revision: 4}, Succeeded: true},
		&etcdserverpb.TxnResponse{Header: &etcdserverpb.ResponseHeader{Revision: 4}, Responses: []*etcdserverpb.ResponseOp{
			{Response: &etcdserverpb.ResponseOp_ResponseRange{ResponseRange: &etcdserverpb.RangeResponse{
				Kvs: []*mvccpb.KeyValue{{Key: []byte("k"), Value: []byte("v"), ModRevision: 3}}}}}}},
		&etcdserverpb.AuthenticateResponse{Token: "token"},
	} {
		b, _ := proto.Marshal(m)
		f.Add(frame(b))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > frameHeader+maxResponse {
			return // the client refuses these before decoding
		}
		msg, err := unframe(body)
		if err != nil {
			return
		}
		if r, err := decodeTxnResponse(msg); err == nil {
			checkTxnAgainstEtcd(t, msg, r)
		}
		if tok, err := decodeAuthenticateResponse(msg); err == nil {
			var ref etcdserverpb.AuthenticateResponse
			if proto.Unmarshal(msg, &ref) == nil && ref.Token != tok {
				t.Fatalf("token %q, etcd reads %q", tok, ref.Token)
			}
		}
	})
}

// checkTxnAgainstEtcd: where etcd's types read msg too, they read the same
// fields the anchor uses.
func checkTxnAgainstEtcd(t *testing.T, msg []byte, r *txnResponse) {
	var ref etcdserverpb.TxnResponse
	if proto.Unmarshal(msg, &ref) != nil {
		return // stricter decoders may differ (e.g. invalid UTF-8 is fine in bytes)
	}
	if r.hasHeader != (ref.Header != nil) || r.revision != ref.Header.GetRevision() || r.succeeded != ref.Succeeded || len(r.responses) != len(ref.Responses) {
		t.Fatalf("decoded %+v, etcd reads %v", r, &ref)
	}
	if len(r.responses) == 0 {
		return
	}
	rr := ref.Responses[0].GetResponseRange()
	if (r.responses[0].rng == nil) != (rr == nil) || rr != nil && len(rr.Kvs) != len(r.responses[0].rng.kvs) {
		t.Fatalf("decoded %+v, etcd reads %v", r.responses[0], ref.Responses[0])
	}
	if rr != nil && len(rr.Kvs) > 0 {
		kv := r.responses[0].rng.kvs[0]
		if !bytes.Equal(kv.value, rr.Kvs[0].Value) || kv.modRevision != rr.Kvs[0].ModRevision {
			t.Fatalf("decoded kv %+v, etcd reads %v", kv, rr.Kvs[0])
		}
	}
}
