package kms

import (
	"errors"
	"strings"
)

// Key references and pinning.
//
// A key is named by its key ARN (arn:aws:kms:us-east-1:111122223333:key/ID)
// or its bare key ID. Aliases are refused: whoever controls the account can
// point an alias at another key, and the enclave could not tell.
//
// KMS answers with the key's ARN. The answer must name the key asked for:
// for an ARN, the same string; for a bare ID, an ARN of a kms key in the
// client's region whose resource is exactly "key/<ID>" (the account is not
// known then, which is why the enclave should be configured with the full
// ARN).

func checkKeyRef(ref string) error {
	switch {
	case ref == "":
		return errors.New("no key ID given")
	case strings.HasPrefix(ref, "alias/") || strings.Contains(ref, ":alias/"):
		return errors.New("key aliases can be repointed: name the key by its ARN or ID")
	case strings.HasPrefix(ref, "arn:"):
		if _, ok := parseKeyARN(ref); !ok {
			return errors.New("key reference is not a KMS key ARN")
		}
	}
	return nil
}

// keyARN is the fields of a KMS key ARN that pinning compares.
type keyARN struct {
	partition, region, account, id string
}

func parseKeyARN(s string) (keyARN, bool) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "kms" || parts[1] == "" || parts[3] == "" || parts[4] == "" {
		return keyARN{}, false
	}
	id, ok := strings.CutPrefix(parts[5], "key/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return keyARN{}, false
	}
	return keyARN{parts[1], parts[3], parts[4], id}, true
}

// keyMatches reports whether got, the KeyId of a response, is the key that
// ref, the request's KeyId, names.
func keyMatches(ref, region, got string) bool {
	g, ok := parseKeyARN(got)
	if !ok {
		return false
	}
	if strings.HasPrefix(ref, "arn:") {
		return ref == got
	}
	return g.region == region && g.id == ref
}
