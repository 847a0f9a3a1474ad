package kmspolicy

import (
	"strings"
)

// arn is an Amazon Resource Name split into its fields.
type arn struct {
	partition, service, region, account, resource string
}

func parseARN(s string) (arn, bool) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[2] == "" || parts[5] == "" {
		return arn{}, false
	}
	return arn{parts[1], parts[2], parts[3], parts[4], parts[5]}, true
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// principalMatch says whether and how a statement's principal covers the
// caller: by naming it (or "*"), or only as a member of a named account.
type principalMatch int

const (
	noMatch principalMatch = iota
	viaAccount
	direct
)

func (s Statement) matchesPrincipal(caller arn) principalMatch {
	if s.Principal.Wildcard {
		return direct
	}
	best := noMatch
	for _, p := range s.Principal.AWS.Values {
		best = max(best, principalMatches(p, caller))
	}
	return best
}

// principalMatches applies the key-policy meaning of an AWS principal:
// "*" is anyone; an account ID or its root ARN is every principal of that
// account (AWS delegates to the account's IAM policies, which this package
// assumes may grant anything); a role ARN also covers that role's STS
// sessions, which is how an instance role calls KMS.
func principalMatches(pattern string, caller arn) principalMatch {
	if pattern == "*" {
		return direct
	}
	if isAccountID(pattern) {
		return matchIf(caller.account == pattern, viaAccount)
	}
	p, ok := parseARN(pattern)
	if !ok || p.partition != caller.partition || p.account != caller.account {
		return noMatch
	}
	if p.service == "iam" && p.resource == "root" {
		if caller.service == "iam" && caller.resource == "root" {
			return direct
		}
		return viaAccount
	}
	if p == caller {
		return direct
	}
	session, isSession := strings.CutPrefix(caller.resource, "assumed-role/")
	roleName, isRole := strings.CutPrefix(p.resource, "role/")
	if !isSession || !isRole || caller.service != "sts" || p.service != "iam" {
		return noMatch
	}
	// Session ARNs carry the role name without its path.
	if i := strings.LastIndexByte(roleName, '/'); i >= 0 {
		roleName = roleName[i+1:]
	}
	sessionRole, _, _ := strings.Cut(session, "/")
	return matchIf(sessionRole == roleName, direct)
}

func matchIf(ok bool, m principalMatch) principalMatch {
	if ok {
		return m
	}
	return noMatch
}

// matchesAction compares action names without regard to case, as IAM does,
// with * and ? wildcards ("kms:*", "kms:Re*").
func (s Statement) matchesAction(action string) bool {
	for _, a := range s.Action.Values {
		if globMatch(strings.ToLower(a), strings.ToLower(action)) {
			return true
		}
	}
	return false
}

func (s Statement) matchesResource(resource string) bool {
	for _, r := range s.Resource.Values {
		if r == "*" || (resource != "" && globMatch(r, resource)) {
			return true
		}
	}
	return false
}

// globMatch reports whether s matches pattern, where * matches any run of
// characters and ? any one character. It backtracks only to the last *, so
// it runs in O(len(pattern)*len(s)) at worst, whatever the input.
func globMatch(pattern, s string) bool {
	p, i := []rune(pattern), []rune(s)
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(i) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == i[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
