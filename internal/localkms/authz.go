package localkms

import (
	"strings"

	"github.com/tmkms-nitro/tmkms-nitro/internal/kmspolicy"
)

// authorize evaluates k's policy for principal calling action. The context
// holds the condition keys KMS would set: kms:CallerAccount, one
// kms:EncryptionContext:<key> per context pair, and the Recipient's PCRs.
func (s *Server) authorize(principal, action string, k *key, encCtx map[string]string, r *recipient) error {
	req := kmspolicy.Request{
		Principal: principal,
		Action:    action,
		Resource:  k.ARN,
		Context:   requestContext(principal, encCtx, r),
	}
	d, err := kmspolicy.Evaluate(k.policy, req)
	if err != nil {
		// Fail closed, and say why: the policy was accepted when stored, so
		// this is a request the evaluator cannot place (e.g. context keys
		// differing only in case).
		return errAccessDenied("User: %s is not authorized to perform: %s on resource: %s because the key policy cannot be evaluated for this request: %v",
			principal, action, k.ARN, err)
	}
	if d.Allowed() {
		return nil
	}
	how := "because no resource-based policy allows the " + action + " action"
	if d.Outcome == kmspolicy.ExplicitDeny {
		how = "with an explicit deny in a resource-based policy"
	}
	// AWS's wording, then kmspolicy's reason, which names the statement.
	return errAccessDenied("User: %s is not authorized to perform: %s on resource: %s %s: %s",
		principal, action, k.ARN, how, d.Reason)
}

func requestContext(principal string, encCtx map[string]string, r *recipient) map[string]string {
	ctx := map[string]string{}
	if parts := strings.SplitN(principal, ":", 6); len(parts) == 6 {
		ctx["kms:CallerAccount"] = parts[4]
	}
	for k, v := range encCtx {
		ctx["kms:EncryptionContext:"+k] = v
	}
	if r != nil {
		for k, v := range r.context {
			ctx[k] = v
		}
	}
	return ctx
}
