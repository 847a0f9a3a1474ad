package kmspolicy

import (
	"fmt"
	"strings"
)

// Request is a KMS API call as a key policy sees it.
type Request struct {
	// Principal is the caller's ARN: an IAM user or role,
	// "arn:aws:iam::111122223333:root", or an STS assumed-role session
	// ("arn:aws:sts::111122223333:assumed-role/ROLE/SESSION"), which is
	// what an EC2 instance role presents.
	Principal string
	// Action is the API action, e.g. "kms:Decrypt".
	Action string
	// Resource is the key ARN. It may be empty; then only statements whose
	// Resource is "*" (as in every key policy AWS writes) apply.
	Resource string
	// Context holds the condition keys present in the request and their
	// values, e.g. "kms:RecipientAttestation:PCR0" when the request carries
	// an attestation document. Keys are matched without regard to case.
	Context map[string]string
}

// Outcome is the result class of an evaluation.
type Outcome int

// The three outcomes of IAM evaluation. The zero value denies.
const (
	ImplicitDeny Outcome = iota // no statement allows the request
	Allowed                     // an Allow statement applies and no Deny does
	ExplicitDeny                // a Deny statement applies
)

func (o Outcome) String() string {
	switch o {
	case Allowed:
		return "allowed"
	case ExplicitDeny:
		return "explicit deny"
	}
	return "implicit deny"
}

// Decision is Evaluate's verdict and why.
type Decision struct {
	Outcome Outcome
	// Statement names the statement that decided: its Sid, or "#n" for an
	// unnamed n-th statement. For ImplicitDeny it is the closest miss, a
	// statement that matched principal and action but failed a condition,
	// or empty when there is none.
	Statement string
	// Reason explains the decision in a sentence fit for an AccessDenied
	// message or a test failure.
	Reason string
}

// Allowed reports whether the request is allowed.
func (d Decision) Allowed() bool { return d.Outcome == Allowed }

func (d Decision) String() string {
	if d.Allowed() {
		return d.Reason
	}
	return "AccessDenied: " + d.Reason
}

// Evaluate decides req against p with AWS's rules for a single policy:
// any applicable Deny wins, else any applicable Allow, else implicit deny.
// A statement applies when its principal, action, resource and every
// condition match. Evaluate fails closed: if p is invalid or uses something
// unsupported, or req is malformed, it returns an error and a denying
// Decision.
func Evaluate(p Policy, req Request) (Decision, error) {
	if err := p.Validate(); err != nil {
		return Decision{}, err
	}
	caller, ctx, err := req.normalize()
	if err != nil {
		return Decision{}, err
	}
	var allow, miss *Decision
	allowDirect := false
	for i, s := range p.Statement {
		how := s.matchesPrincipal(caller)
		if how == noMatch || !s.matchesAction(req.Action) || !s.matchesResource(req.Resource) {
			continue
		}
		held, why := evalConditions(s.Condition, ctx)
		name := statementID(i, s)
		switch {
		case held && s.Effect == Deny:
			return Decision{ExplicitDeny, name, fmt.Sprintf("%s explicitly denies %s for %s%s",
				s.name(i), req.Action, req.Principal, because(why))}, nil
		case held && (allow == nil || how == direct && !allowDirect):
			// Prefer a statement naming the caller over one reaching it
			// through its account: it is the one an operator meant.
			allow, allowDirect = &Decision{Allowed, name, fmt.Sprintf("%s allows %s for %s%s%s",
				s.name(i), req.Action, req.Principal, viaAccountNote(how, caller), because(why))}, how == direct
		case !held && s.Effect == Allow && miss == nil:
			miss = &Decision{ImplicitDeny, name, fmt.Sprintf("no statement allows %s for %s; %s does not apply: %s",
				req.Action, req.Principal, s.name(i), why)}
		}
	}
	if allow != nil {
		return *allow, nil
	}
	if miss != nil {
		return *miss, nil
	}
	return Decision{ImplicitDeny, "", fmt.Sprintf("no statement allows %s for %s", req.Action, req.Principal)}, nil
}

func viaAccountNote(how principalMatch, caller arn) string {
	if how != viaAccount {
		return ""
	}
	return fmt.Sprintf(" (as a principal of account %s, assuming its IAM policies grant it)", caller.account)
}

func statementID(i int, s Statement) string {
	if s.Sid != "" {
		return s.Sid
	}
	return fmt.Sprintf("#%d", i+1)
}

func because(why string) string {
	if why == "" {
		return ""
	}
	return " because " + why
}

// contextValue is a request context entry under its folded key.
type contextValue struct {
	key, value string
}

func (r Request) normalize() (arn, map[string]contextValue, error) {
	caller, ok := parseARN(r.Principal)
	if !ok || caller.account == "" {
		return arn{}, nil, fmt.Errorf("%w: principal %q is not an ARN with an account", ErrInvalidRequest, r.Principal)
	}
	service, name, ok := strings.Cut(r.Action, ":")
	if !ok || service == "" || name == "" || strings.ContainsAny(r.Action, "*?") {
		return arn{}, nil, fmt.Errorf("%w: action %q is not of the form service:Action", ErrInvalidRequest, r.Action)
	}
	ctx := make(map[string]contextValue, len(r.Context))
	for k, v := range r.Context {
		fold := strings.ToLower(k)
		if prev, dup := ctx[fold]; dup {
			return arn{}, nil, fmt.Errorf("%w: context keys %q and %q differ only in case", ErrInvalidRequest, prev.key, k)
		}
		if k == "" {
			return arn{}, nil, fmt.Errorf("%w: empty context key", ErrInvalidRequest)
		}
		ctx[fold] = contextValue{k, v}
	}
	return caller, ctx, nil
}
