// Package metrics holds the helper's Prometheus metrics and its /healthz.
//
// A helper has one [Set]: one registry, with the Go runtime (go_*) and
// process (process_*) collectors, served by [Set.Handler] on /metrics
// with /healthz beside ([Set.Serve] runs that handler on its own
// address). Each chain the helper signs for has its [Metrics], made by
// [Set.Chain]; the host reports that chain's events through them (a
// signature released, a refusal, a state persisted, a validator
// connection up or down, an enclave configured, an etcd commit).
// [Set.Lookup] finds a registered chain's Metrics and never creates one,
// so that a chain id received from elsewhere cannot add label values.
// There is no package-level state.
//
// # Metrics and health
//
// Every tmkms_* series carries the chain_id label of its chain. Besides
// the Go runtime and process metrics, which are the helper's, the Set
// exports for each chain:
//
//   - tmkms_signatures_total{type} (counter): signatures the enclave
//     released, by type: proposal, prevote, precommit. A repeated request
//     answered with the stored signature is not counted.
//   - tmkms_refusals_total{reason} (counter): signing requests the enclave
//     refused, by reason: double_sign, regression (height, round or step
//     below the last signed), wrong_chain_id, persist_failed (the state
//     could not be made durable, so nothing was signed), invalid
//     (malformed request), cluster_unavailable and cluster_lost_race
//     (with etcd), other.
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
//     connection to the chain's node's priv_validator_laddr.
//   - tmkms_validator_reconnects_total (counter): redials of the validator
//     after a connection ended or failed.
//   - tmkms_enclave_up (gauge): 1 when the chain's last configuration push
//     (every second) reached the enclave.
//   - tmkms_credentials_expiry_timestamp_seconds (gauge): Unix time at
//     which the AWS credentials pushed to the enclave with the chain's
//     configuration expire; 0 for static credentials that never expire.
//
// With host-relayed [ha] ([Metrics.EnableHA]), each chain has its own
// decision record in etcd, and the chain's
// tmkms_ha_commits_total{result}, tmkms_ha_commit_seconds,
// tmkms_ha_etcd_up, tmkms_ha_instances_alive and
// tmkms_ha_decision_instance{instance}.
//
// The signature and refusal series of a chain start at 0, so that
// increase() sees the first event.
//
// /healthz answers 200 "ok" when every chain is healthy ([Set.Health]):
// the enclave is up for it, and a signature was released within the
// health window (default 60 s; none is required during the first window
// after the chain was registered), or, in a set of instances, the
// cluster rules of [Metrics.Health] hold. Otherwise it answers 503 with
// one line naming each unhealthy chain and why, e.g.
// "chain-a: no signature for 1m30s; chain-b: enclave unreachable". A
// Set without chains is unhealthy: "no chain configured".
//
// The alert rules and the Grafana dashboard for these metrics are in
// deploy/monitoring (alerts.yml, tested by alerts_test.yml, and
// dashboard.json); docs/operations.md describes them.
package metrics
