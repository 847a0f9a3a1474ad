// Package metrics holds the helper's Prometheus metrics and its /healthz.
//
// The host reports events (a signature released, a refusal, a state
// persisted, a validator connection up or down, an enclave configured)
// through the methods of [Metrics]; [Metrics.Handler] serves them on
// /metrics with /healthz beside, and [Metrics.Serve] runs that handler on
// its own address. Each [Metrics] has its own registry: there is no
// package-level state.
//
// The text below, down to the end of this comment, is the README section.
//
// # Metrics and health
//
// The helper serves Prometheus metrics on /metrics and a health check on
// /healthz at the configured metrics address. Besides the Go runtime
// (go_*) and process (process_*) metrics, it exports:
//
//   - tmkms_signatures_total{chain_id,type} (counter): signatures the
//     enclave released, by type: proposal, prevote, precommit. A repeated
//     request answered with the stored signature is not counted.
//   - tmkms_refusals_total{chain_id,reason} (counter): signing requests the
//     enclave refused, by reason: double_sign, regression (height, round or
//     step below the last signed), wrong_chain_id, persist_failed (the
//     state could not be made durable, so nothing was signed), invalid
//     (malformed request), other.
//   - tmkms_signing_latency_seconds (histogram, 0.1 ms to 5 s): from the
//     enclave receiving a signing request to releasing the signature,
//     including the state round trip to the helper.
//   - tmkms_last_signed_height, tmkms_last_signed_round,
//     tmkms_last_signed_step (gauges): position of the last released
//     signature; step is 1 proposal, 2 prevote, 3 precommit.
//   - tmkms_last_signature_timestamp_seconds (gauge): Unix time of the last
//     released signature, 0 before the first.
//   - tmkms_state_persist_seconds (histogram, 0.1 ms to 5 s): time for the
//     helper to write one double-sign state durably (fdatasync).
//   - tmkms_state_persist_failures_total (counter): states the helper failed
//     or refused to persist; the enclave signed nothing for each.
//   - tmkms_validator_connected (gauge): 1 while the helper holds a
//     connection to the node's priv_validator_laddr.
//   - tmkms_validator_reconnects_total (counter): redials of the validator
//     after a connection ended or failed.
//   - tmkms_enclave_up (gauge): 1 when the last configuration push (every
//     second) reached the enclave.
//   - tmkms_credentials_expiry_timestamp_seconds (gauge): Unix time at
//     which the AWS credentials pushed to the enclave expire; 0 for static
//     credentials that never expire.
//
// /healthz answers 200 "ok" when the enclave is up and a signature was
// released within the health window (default 60 s; no signature is
// required during the first window after start). Otherwise it answers 503
// with one line giving the reason, e.g. "enclave unreachable" or
// "no signature for 1m30s".
//
// Example alert rules (Prometheus rule file; adjust job and thresholds):
//
//	groups:
//	  - name: tmkms-nitro
//	    rules:
//	      - alert: TmkmsNoSignature
//	        # Nothing signed for 2 minutes (including never since a start
//	        # more than 2 minutes ago).
//	        expr: |
//	          time() - tmkms_last_signature_timestamp_seconds > 120
//	            and time() - process_start_time_seconds > 120
//	        labels: {severity: critical}
//	        annotations:
//	          summary: "{{ $labels.instance }}: no signature released for 2 minutes"
//	      - alert: TmkmsEnclaveDown
//	        expr: tmkms_enclave_up == 0
//	        for: 30s
//	        labels: {severity: critical}
//	        annotations:
//	          summary: "{{ $labels.instance }}: the enclave is unreachable"
//	      - alert: TmkmsHelperDown
//	        expr: up{job="tmkms"} == 0
//	        for: 1m
//	        labels: {severity: critical}
//	        annotations:
//	          summary: "{{ $labels.instance }}: the helper's metrics cannot be scraped"
//	      - alert: TmkmsRefusals
//	        # Any refusal: a double sign or regression attempt, a wrong chain
//	        # id, or a state that could not be persisted.
//	        expr: sum by (instance, chain_id, reason) (increase(tmkms_refusals_total[5m])) > 0
//	        labels: {severity: warning}
//	        annotations:
//	          summary: "{{ $labels.instance }}: {{ $value }} signing refusals ({{ $labels.reason }}) in 5m"
//	      - alert: TmkmsCredentialsExpiring
//	        # The helper refreshes instance-role credentials well before
//	        # they expire; this fires when refreshing has stopped working.
//	        expr: |
//	          tmkms_credentials_expiry_timestamp_seconds > 0
//	            and tmkms_credentials_expiry_timestamp_seconds - time() < 900
//	        labels: {severity: critical}
//	        annotations:
//	          summary: "{{ $labels.instance }}: the enclave's AWS credentials expire within 15 minutes"
//	      - alert: TmkmsSlowStatePersist
//	        expr: |
//	          histogram_quantile(0.99,
//	            sum by (instance, le) (rate(tmkms_state_persist_seconds_bucket[5m]))) > 0.1
//	        for: 5m
//	        labels: {severity: warning}
//	        annotations:
//	          summary: "{{ $labels.instance }}: p99 state persist latency above 100 ms"
//
// Refusal counters start at 0 for the configured chain, so increase()
// sees the first refusal. Scrape every 15 s or faster for these windows.
package metrics
