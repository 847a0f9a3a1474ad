package privval_test

import (
	"bytes"
	"context"
	"testing"

	pvv1 "github.com/cometbft/cometbft/api/cometbft/privval/v1"
	pvv1beta2 "github.com/cometbft/cometbft/api/cometbft/privval/v1beta2"
	cmtenc "github.com/cometbft/cometbft/crypto/encoding"

	"github.com/tmkms-nitro/tmkms-nitro/internal/privval"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signer"
	"github.com/tmkms-nitro/tmkms-nitro/internal/signstate"
)

// Each dialect's PubKeyResponse carries the key as that version's nodes
// read it: v0.34 to v0.40 as a crypto.PublicKey (ed25519 or secp256k1
// field), decoded here with CometBFT's own codec; v1.0 as type name and
// bytes. Auto carries both; each dialect carries nothing of the other's.
func TestPubKeyResponseDialects(t *testing.T) {
	forEachKeyType(t, func(t *testing.T, keyType string) {
		key, err := signer.NewKey(keyType, bytes.Repeat([]byte{4}, 32))
		if err != nil {
			t.Fatal(err)
		}
		want := key.PubKey()
		req, _ := (&pvv1.Message{Sum: &pvv1.Message_PubKeyRequest{PubKeyRequest: &pvv1.PubKeyRequest{ChainId: chain}}}).Marshal()
		for _, d := range []privval.Dialect{privval.Auto, privval.V034, privval.V038, privval.V1} {
			s := signer.New(key, chain, signstate.State{}, memStore{}, signer.Options{})
			resp, err := privval.NewHandler(s, d, nil).Handle(context.Background(), req)
			if err != nil {
				t.Fatalf("%s: %v", d, err)
			}
			var old pvv1beta2.Message
			if err := old.Unmarshal(resp); err != nil {
				t.Fatalf("%s: %v", d, err)
			}
			oldKey := old.GetPubKeyResponse().GetPubKey()
			if d == privval.V1 {
				if oldKey.Sum != nil {
					t.Errorf("%s: carries the pre-v1 key field", d)
				}
			} else {
				pk, err := cmtenc.PubKeyFromProto(oldKey)
				if err != nil || pk.Type() != want.Type || !bytes.Equal(pk.Bytes(), want.Bytes) {
					t.Errorf("%s: pre-v1 key %v (%v), want %s %x", d, pk, err, want.Type, want.Bytes)
				}
			}
			var v1 pvv1.Message
			if err := v1.Unmarshal(resp); err != nil {
				t.Fatalf("%s: %v", d, err)
			}
			r := v1.GetPubKeyResponse()
			if d == privval.V034 || d == privval.V038 {
				if r.PubKeyType != "" || r.PubKeyBytes != nil {
					t.Errorf("%s: carries the v1 key fields", d)
				}
				continue
			}
			if r.PubKeyType != want.Type || !bytes.Equal(r.PubKeyBytes, want.Bytes) {
				t.Errorf("%s: v1 key %q %x, want %q %x", d, r.PubKeyType, r.PubKeyBytes, want.Type, want.Bytes)
			}
		}
	})
}
