package enclaveproto

import "bytes"

// SameSettings reports whether a and b configure the enclave alike: their
// encodings are equal once the credentials, which the host refreshes, are
// left out. Comparing encodings instead of listing fields means a field
// added to Configure counts without anyone remembering to list it.
func SameSettings(a, b *Configure) bool {
	x, errA := settings(a)
	y, errB := settings(b)
	return errA == nil && errB == nil && bytes.Equal(x, y)
}

// settings is c's deterministic encoding without its credentials.
func settings(c *Configure) ([]byte, error) {
	s := *c
	s.Credentials = Credentials{}
	return encMode.Marshal(&s)
}
