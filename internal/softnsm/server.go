package softnsm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/tmkms-nitro/tmkms-nitro/internal/nsm"
)

// Server answers the NSM requests of local enclaves on a unix socket (see
// nsm.Socket), so that the enclave program holds no signing CA and no
// local-mode code: it speaks to this server exactly as it speaks to
// /dev/nsm.
//
// Its documents report, as PCR0, the measurement of the executable of the
// process that asks (found from the socket's peer credentials), so a
// changed enclave binary gets a different PCR0 and is refused by a key
// policy pinning the old one, as on Nitro.
type Server struct {
	CA       *CA
	ModuleID string
	PCRs     map[int][]byte // PCRs other than 0, e.g. PCR4 of the local instance
	Log      *slog.Logger
}

// randomChunk is how many bytes one GetRandom answers, as the device does.
const randomChunk = 256

// Serve answers on ln until ctx ends, then closes ln and waits for the
// connections it serves.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("softnsm: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			cstop := context.AfterFunc(ctx, func() { c.Close() })
			defer cstop()
			if err := s.serveConn(ctx, c); err != nil && s.Log != nil {
				s.Log.Warn("software NSM: dropped a connection", "err", err)
			}
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) error {
	exe, err := peerExecutable(c)
	if err != nil {
		return err
	}
	pcr0, err := PCR0File(exe)
	if err != nil {
		return err
	}
	pcrs := map[int][]byte{0: pcr0}
	for i, v := range s.PCRs {
		if i != 0 {
			pcrs[i] = v
		}
	}
	soft, err := NewSoftware(&SoftwareConfig{CA: s.CA, ModuleID: s.ModuleID, PCRs: pcrs})
	if err != nil {
		return err
	}
	for {
		c.SetDeadline(time.Now().Add(time.Minute))
		req, err := nsm.ReadFrame(c, nsm.MaxRequestSize)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		resp, err := cbor.Marshal(answer(ctx, soft, req))
		if err != nil {
			return err
		}
		if err := nsm.WriteFrame(c, resp); err != nil {
			return err
		}
	}
}

// answer is the device's answer to one request: a one-entry map naming the
// request's variant, or {"Error": code}.
func answer(ctx context.Context, soft *Software, req []byte) any {
	fail := func(code string) any { return map[string]string{"Error": code} }
	var unit string
	if requestMode.Unmarshal(req, &unit) == nil {
		if unit != "GetRandom" {
			return fail("InvalidOperation")
		}
		b, err := soft.Random(ctx, randomChunk)
		if err != nil {
			return fail("InternalError")
		}
		return map[string]any{"GetRandom": map[string][]byte{"random": b}}
	}
	var r struct {
		Attestation *struct {
			UserData  []byte `cbor:"user_data"`
			Nonce     []byte `cbor:"nonce"`
			PublicKey []byte `cbor:"public_key"`
		} `cbor:"Attestation"`
		DescribePCR *struct {
			Index uint16 `cbor:"index"`
		} `cbor:"DescribePCR"`
	}
	if err := requestMode.Unmarshal(req, &r); err != nil || (r.Attestation == nil) == (r.DescribePCR == nil) {
		return fail("InvalidOperation")
	}
	if a := r.Attestation; a != nil {
		doc, err := soft.Attest(ctx, nsm.AttestRequest{UserData: a.UserData, Nonce: a.Nonce, PublicKey: a.PublicKey})
		if err != nil {
			return fail("InvalidArgument")
		}
		return map[string]any{"Attestation": map[string][]byte{"document": doc}}
	}
	v, err := soft.DescribePCR(ctx, int(r.DescribePCR.Index))
	if err != nil {
		return fail("InvalidIndex")
	}
	return map[string]any{"DescribePCR": map[string]any{"lock": r.DescribePCR.Index < lockedPCRs, "data": v}}
}

// requestMode refuses what the device would: duplicate keys, unknown
// variants and fields.
var requestMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		MaxNestedLevels:   4,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err) // the options are constants
	}
	return dm
}()
