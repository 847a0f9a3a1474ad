package kmspolicy

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// awsShapes uses every shape AWS allows for the elements we model: single
// strings and one-element arrays, "Principal": "*" and objects with several
// principal types, and a lone Statement object.
const awsShapes = `{
  "Version": "2012-10-17",
  "Id": "key-default-1",
  "Statement": [
    {"Sid": "one", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
     "Action": "kms:*", "Resource": "*"},
    {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::111122223333:role/a"], "Service": "cloudtrail.amazonaws.com"},
     "Action": ["kms:Decrypt"], "Resource": ["*"],
     "Condition": {"StringEqualsIgnoreCase": {"kms:RecipientAttestation:PCR0": ["aa", "bb"], "kms:RecipientAttestation:PCR4": "cc"},
                   "Null": {"kms:RecipientAttestation:ImageSha384": "false"}}},
    {"Sid": "deny", "Effect": "Deny", "Principal": "*", "Action": ["kms:Decrypt", "kms:ReEncryptFrom"], "Resource": "*",
     "Condition": {"StringNotEqualsIgnoreCase": {"kms:RecipientAttestation:PCR0": "aa"}}}
  ]
}`

func TestRoundTripPreservesShapes(t *testing.T) {
	p, err := Parse([]byte(awsShapes))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	out, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var want, got any
	if err := json.Unmarshal([]byte(awsShapes), &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip changed shapes:\n got %s\nwant %s", out, awsShapes)
	}
}

func TestSingleStatementObject(t *testing.T) {
	p, err := Parse([]byte(`{"Version": "2012-10-17", "Statement":
		{"Effect": "Allow", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*"}}`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(p.Statement) != 1 || !p.Statement[0].Principal.Wildcard {
		t.Errorf("got %+v", p)
	}
}

func TestParseRejects(t *testing.T) {
	stmt := func(body string) string {
		return `{"Version": "2012-10-17", "Statement": [{` + body + `}]}`
	}
	ok := `"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"`
	tests := []struct {
		name, in string
		sentinel error // nil: a decoding error
	}{
		{"not JSON", `{`, nil},
		{"trailing data", `{"Version": "2012-10-17", "Statement": []} {}`, nil},
		{"unknown top-level element", `{"Version": "2012-10-17", "Statement": [], "Extra": 1}`, nil},
		{"NotAction", stmt(ok + `, "NotAction": "kms:Encrypt"`), nil},
		{"NotPrincipal", stmt(ok + `, "NotPrincipal": {"AWS": "x"}`), nil},
		{"misspelt Conditions", stmt(ok + `, "Conditions": {}`), nil},
		{"duplicate Effect", stmt(ok + `, "Effect": "Deny"`), nil},
		{"duplicate Effect differing in case", stmt(ok + `, "effect": "Deny"`), nil},
		{"duplicate condition key", stmt(ok + `, "Condition": {"Null": {"a": "true", "a": "false"}}`), nil},
		{"principal string not *", stmt(`"Effect": "Allow", "Principal": "arn:aws:iam::111122223333:root", "Action": "kms:Decrypt", "Resource": "*"`), nil},
		{"unknown principal type", stmt(`"Effect": "Allow", "Principal": {"Robot": "x"}, "Action": "kms:Decrypt", "Resource": "*"`), nil},
		{"number as action", stmt(`"Effect": "Allow", "Principal": "*", "Action": 7, "Resource": "*"`), nil},
		{"null action", stmt(`"Effect": "Allow", "Principal": "*", "Action": null, "Resource": "*"`), nil},
		{"number in action list", stmt(`"Effect": "Allow", "Principal": "*", "Action": ["kms:Decrypt", 1], "Resource": "*"`), nil},
		{"version 2", `{"Version": "2", "Statement": [{` + ok + `}]}`, ErrInvalidPolicy},
		{"no statements", `{"Version": "2012-10-17", "Statement": []}`, ErrInvalidPolicy},
		{"effect lower case", stmt(`"Effect": "allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"`), ErrInvalidPolicy},
		{"no principal", stmt(`"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"`), ErrInvalidPolicy},
		{"empty action list", stmt(`"Effect": "Allow", "Principal": "*", "Action": [], "Resource": "*"`), ErrInvalidPolicy},
		{"empty action string", stmt(`"Effect": "Allow", "Principal": "*", "Action": "", "Resource": "*"`), ErrInvalidPolicy},
		{"no resource", stmt(`"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt"`), ErrInvalidPolicy},
		{"Null value yes", stmt(ok + `, "Condition": {"Null": {"k": "yes"}}`), ErrInvalidPolicy},
		{"operator without keys", stmt(ok + `, "Condition": {"StringEquals": {}}`), ErrInvalidPolicy},
		{"key without values", stmt(ok + `, "Condition": {"StringEquals": {"k": []}}`), ErrInvalidPolicy},
		{"unknown operator", stmt(ok + `, "Condition": {"StringLike": {"k": "v*"}}`), ErrUnsupported},
		{"IfExists operator", stmt(ok + `, "Condition": {"StringEqualsIfExists": {"k": "v"}}`), ErrUnsupported},
		{"set operator", stmt(ok + `, "Condition": {"ForAnyValue:StringEquals": {"k": "v"}}`), ErrUnsupported},
		{"policy variable", stmt(ok + `, "Condition": {"StringEquals": {"k": "${aws:username}"}}`), ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", p)
			}
			if !strings.HasPrefix(err.Error(), "kmspolicy: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("error %v does not match %v", err, tt.sentinel)
			}
		})
	}
}

func TestMarshalRejectsWildcardWithList(t *testing.T) {
	bad := Principal{Wildcard: true, AWS: One("x")}
	if _, err := json.Marshal(bad); err == nil {
		t.Error("marshalled a principal that is both * and a list")
	}
}

func TestStringsShapes(t *testing.T) {
	for _, tt := range []struct {
		in   Strings
		want string
	}{
		{One("a"), `"a"`},
		{List("a"), `["a"]`},
		{List("a", "b"), `["a","b"]`},
		{Strings{Values: []string{"a", "b"}}, `["a","b"]`},
		{Strings{}, `[]`},
	} {
		got, err := json.Marshal(tt.in)
		if err != nil || string(got) != tt.want {
			t.Errorf("Marshal(%+v) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}
