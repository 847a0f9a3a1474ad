package kmspolicy

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error carries the
// package prefix, that an accepted policy survives Marshal and Parse
// unchanged, and that Evaluate on it never errors.
func FuzzParse(f *testing.F) {
	golden, err := os.ReadFile("testdata/seed-policy.golden.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(golden))
	f.Add(awsShapes)
	f.Add(`{"Version": "2012-10-17", "Statement": {"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*"}}`)
	f.Fuzz(func(t *testing.T, in string) {
		// AWS refuses key policies over 32 KiB. Bounded, one execution
		// stays in milliseconds: glob matching is O(pattern*name).
		if len(in) > 32<<10 {
			return
		}
		p, err := Parse([]byte(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "kmspolicy: ") {
				t.Fatalf("error without package prefix: %v", err)
			}
			return
		}
		out, err := Marshal(p)
		if err != nil {
			t.Fatalf("Marshal of a parsed policy: %v", err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse of Marshal output: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, p) {
			t.Fatalf("round trip changed the policy:\n%s", out)
		}
		req := Request{Principal: enclaveSession, Action: "kms:Decrypt", Context: attested(testPCR0, testPCR4())}
		if _, err := Evaluate(p, req); err != nil {
			t.Fatalf("Evaluate of a valid policy: %v", err)
		}
	})
}
