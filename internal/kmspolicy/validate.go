package kmspolicy

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Sentinel errors. Every error from Validate and Evaluate matches one of
// them with errors.Is.
var (
	// ErrInvalidPolicy: the document breaks a rule of the policy language
	// (missing Effect, empty Action, a Null value other than true/false...).
	ErrInvalidPolicy = errors.New("kmspolicy: invalid policy")
	// ErrUnsupported: the document is valid IAM but uses something this
	// package does not evaluate (StringLike, ...IfExists, policy variables).
	// Evaluation fails closed rather than guess.
	ErrUnsupported = errors.New("kmspolicy: unsupported policy feature")
	// ErrInvalidRequest: the request cannot be evaluated (no principal ARN,
	// no action, context keys that collide when case is ignored).
	ErrInvalidRequest = errors.New("kmspolicy: invalid request")
)

// Condition operators Evaluate understands.
const (
	StringEquals              = "StringEquals"
	StringNotEquals           = "StringNotEquals"
	StringEqualsIgnoreCase    = "StringEqualsIgnoreCase"
	StringNotEqualsIgnoreCase = "StringNotEqualsIgnoreCase"
	Null                      = "Null"
)

var knownOperators = map[string]bool{
	StringEquals: true, StringNotEquals: true,
	StringEqualsIgnoreCase: true, StringNotEqualsIgnoreCase: true,
	Null: true,
}

// Validate checks p against the rules of the policy language and the subset
// Evaluate supports. A policy that passes can be evaluated without error.
func (p Policy) Validate() error {
	if p.Version != "2012-10-17" && p.Version != "2008-10-17" {
		return fmt.Errorf("%w: Version is %q, want \"2012-10-17\"", ErrInvalidPolicy, p.Version)
	}
	if len(p.Statement) == 0 {
		return fmt.Errorf("%w: no statements", ErrInvalidPolicy)
	}
	for i, s := range p.Statement {
		if err := s.validate(s.name(i)); err != nil {
			return err
		}
	}
	return nil
}

// name identifies a statement in messages: by Sid when it has one.
func (s Statement) name(i int) string {
	if s.Sid != "" {
		return fmt.Sprintf("statement %q", s.Sid)
	}
	return fmt.Sprintf("statement #%d", i+1)
}

func (s Statement) validate(where string) error {
	if s.Effect != Allow && s.Effect != Deny {
		return fmt.Errorf("%w: %s: Effect is %q, want Allow or Deny", ErrInvalidPolicy, where, s.Effect)
	}
	if s.Principal.IsZero() {
		return fmt.Errorf("%w: %s: no Principal (key policies need one)", ErrInvalidPolicy, where)
	}
	if err := nonEmpty(where, "Action", s.Action); err != nil {
		return err
	}
	if err := nonEmpty(where, "Resource", s.Resource); err != nil {
		return err
	}
	for _, r := range s.Resource.Values {
		if strings.Contains(r, "${") {
			return fmt.Errorf("%w: %s: policy variable in Resource %q", ErrUnsupported, where, r)
		}
	}
	for _, op := range slices.Sorted(maps.Keys(s.Condition)) {
		if err := validateOperator(where, op, s.Condition[op]); err != nil {
			return err
		}
	}
	return nil
}

func nonEmpty(where, element string, v Strings) error {
	if len(v.Values) == 0 {
		return fmt.Errorf("%w: %s: empty %s", ErrInvalidPolicy, where, element)
	}
	for _, s := range v.Values {
		if s == "" {
			return fmt.Errorf("%w: %s: empty string in %s", ErrInvalidPolicy, where, element)
		}
	}
	return nil
}

func validateOperator(where, op string, keys map[string]Strings) error {
	if !knownOperators[op] {
		return fmt.Errorf("%w: %s: condition operator %q (supported: StringEquals, StringNotEquals, "+
			"StringEqualsIgnoreCase, StringNotEqualsIgnoreCase, Null)", ErrUnsupported, where, op)
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w: %s: condition operator %s has no keys", ErrInvalidPolicy, where, op)
	}
	for _, key := range slices.Sorted(maps.Keys(keys)) {
		values := keys[key]
		if key == "" {
			return fmt.Errorf("%w: %s: empty condition key under %s", ErrInvalidPolicy, where, op)
		}
		if len(values.Values) == 0 {
			return fmt.Errorf("%w: %s: condition %s %s has no values", ErrInvalidPolicy, where, op, key)
		}
		for _, v := range values.Values {
			if strings.Contains(v, "${") {
				return fmt.Errorf("%w: %s: policy variable in condition %s %s value %q", ErrUnsupported, where, op, key, v)
			}
			if op == Null && v != "true" && v != "false" {
				return fmt.Errorf("%w: %s: Null condition on %s has value %q, want \"true\" or \"false\"", ErrInvalidPolicy, where, key, v)
			}
		}
	}
	return nil
}
