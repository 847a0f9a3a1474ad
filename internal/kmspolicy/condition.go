package kmspolicy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// evalConditions applies IAM's rules for a Condition block: every operator
// must hold (AND), every key under an operator must hold (AND), and a key
// holds if any of its values matches (OR), or for a negated operator if none
// does (NOR). It returns whether the block holds and a description: the
// first failing test, or the tests that held. Operators and keys are visited
// in sorted order so the description is stable. The block must have passed
// Validate.
func evalConditions(c Condition, ctx map[string]contextValue) (bool, string) {
	var held []string
	for _, op := range slices.Sorted(maps.Keys(c)) {
		for _, key := range slices.Sorted(maps.Keys(c[op])) {
			ok, why := evalKey(op, key, c[op][key].Values, ctx)
			if !ok {
				return false, why
			}
			held = append(held, why)
		}
	}
	return true, strings.Join(held, "; ")
}

// evalKey tests one key. A key absent from the request makes the positive
// string operators false and the negated ones true: "If the key that you
// specify in a policy condition is not present in the request context, the
// values do not match" (IAM User Guide, condition operators), so a negated
// test finds no match and holds. That is what makes a
// StringNotEqualsIgnoreCase Deny catch a Decrypt without attestation.
func evalKey(op, key string, values []string, ctx map[string]contextValue) (bool, string) {
	entry, present := ctx[strings.ToLower(key)]
	label := op + " " + key
	if op == Null {
		return evalNull(label, values, present)
	}
	if !present {
		negated := op == StringNotEquals || op == StringNotEqualsIgnoreCase
		return negated, label + ": key absent from the request"
	}
	fold := op == StringEqualsIgnoreCase || op == StringNotEqualsIgnoreCase
	matched := slices.ContainsFunc(values, func(v string) bool {
		if fold {
			return strings.EqualFold(v, entry.value)
		}
		return v == entry.value
	})
	switch op {
	case StringEquals, StringEqualsIgnoreCase:
		if matched {
			return true, fmt.Sprintf("%s: request value %q matches", label, entry.value)
		}
		return false, fmt.Sprintf("%s: request value %q matches none of %q", label, entry.value, values)
	default: // the negated operators
		if matched {
			return false, fmt.Sprintf("%s: request value %q matches %q", label, entry.value, values)
		}
		return true, fmt.Sprintf("%s: request value %q matches none of %q", label, entry.value, values)
	}
}

// evalNull: "true" holds when the key is absent, "false" when present.
func evalNull(label string, values []string, present bool) (bool, string) {
	state := "absent from"
	if present {
		state = "present in"
	}
	want := "false"
	if !present {
		want = "true"
	}
	return slices.Contains(values, want), fmt.Sprintf("%s: key %s the request", label, state)
}
