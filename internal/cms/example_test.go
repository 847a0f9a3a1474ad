package cms_test

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"

	"github.com/tmkms-nitro/tmkms-nitro/internal/cms"
)

func Example() {
	// In the enclave: a fresh key whose public half goes into the
	// attestation document sent to KMS as the Recipient.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}

	// In the local KMS emulator: what KMS would return as CiphertextForRecipient.
	envelope, err := cms.Seal([]byte("32-byte data key would go here!!"), &key.PublicKey, rand.Reader)
	if err != nil {
		panic(err)
	}

	// Back in the enclave.
	plaintext, err := cms.Open(envelope, key)
	switch {
	case errors.Is(err, cms.ErrWrongRecipient):
		fmt.Println("envelope is for another enclave boot")
	case err != nil:
		fmt.Println("refused:", err)
	default:
		fmt.Printf("%s\n", plaintext)
	}
	// Output: 32-byte data key would go here!!
}
