#!/usr/bin/env bash
# tmkms-light's Nitro guide's step 7.1 run script, done properly. `tmkms-nitro-helper
# launch-all` does the same in one process, and is what deploy/systemd runs;
# this script is for operators who prefer to see (and adapt) the steps.
#
# It starts, in order:
#   1. the enclave: nitro-cli run-enclave with the CID of tmkms.toml
#      (enclave_config_cid, default 15);
#   2. vsock-proxy 8000 kms.REGION.amazonaws.com 443, REGION being
#      aws_region of tmkms.toml unless -r is given;
#   3. tmkms-nitro-helper start -c tmkms.toml --cid CID.
# On SIGTERM or SIGINT, or when the helper or the proxy exits, it stops the
# helper, terminates the enclave and the proxy it started (by enclave id and
# pid: never another enclave or proxy on the host), and exits: 0 after a
# signal, 1 otherwise, so that systemd's Restart=on-failure restarts it.
#
# Usage: run_tmkms_nitro_helper.sh [-c tmkms.toml] [-e tmkms.eif] [-r REGION] [--cpu-count N] [--memory MiB] [--proxy-config FILE] [--debug]
#   -c FILE              configuration (default ~/.tmkms/tmkms.toml)
#   -e FILE              enclave image (default: tmkms.eif next to the configuration)
#   -r REGION            KMS region (default: aws_region of the configuration)
#   --cpu-count N        vCPUs for the enclave (default 2)
#   --memory MiB         memory for the enclave (default 512)
#   --proxy-config FILE  vsock-proxy allowlist (default: vsock-proxy's, /etc/nitro_enclaves/vsock-proxy.yaml)
#   --debug              debug mode: readable console, all PCRs zero (never for a real validator)
# TMKMS_NITRO_CLI, TMKMS_VSOCK_PROXY and TMKMS_HELPER override the programs.
set -euo pipefail

readonly kms_port=8000
nitro_cli=${TMKMS_NITRO_CLI:-nitro-cli}
vsock_proxy=${TMKMS_VSOCK_PROXY:-vsock-proxy}
helper=${TMKMS_HELPER:-tmkms-nitro-helper}

config="${HOME:-/root}/.tmkms/tmkms.toml"
eif=""
region=""
cpus=2
memory=512
proxy_config=""
debug=0

log() { echo "run_tmkms_nitro_helper: $*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n 's/^# \{0,1\}//; /^Usage:/,/^TMKMS_NITRO_CLI/p' "$0"; }

while [ $# -gt 0 ]; do
  case "$1" in
    -c) [ $# -ge 2 ] || die "-c needs a file"; config=$2; shift ;;
    -e) [ $# -ge 2 ] || die "-e needs a file"; eif=$2; shift ;;
    -r) [ $# -ge 2 ] || die "-r needs a region"; region=$2; shift ;;
    --cpu-count) [ $# -ge 2 ] || die "--cpu-count needs a number"; cpus=$2; shift ;;
    --memory) [ $# -ge 2 ] || die "--memory needs a number"; memory=$2; shift ;;
    --proxy-config) [ $# -ge 2 ] || die "--proxy-config needs a file"; proxy_config=$2; shift ;;
    --debug) debug=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

# toml_value KEY: a top-level key of the configuration (before any table),
# without quotes or a trailing comment.
toml_value() {
  sed -n "/^[[:space:]]*\[/q; s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*//p" "$config" |
    head -n 1 | sed "s/[[:space:]]*#.*\$//; s/^['\"]//; s/['\"]\$//"
}

[ -r "$config" ] || die "cannot read the configuration $config (-c)"
eif=${eif:-$(dirname "$config")/tmkms.eif}
[ -r "$eif" ] || die "cannot read the enclave image $eif (-e); deploy/enclave/build-eif.sh builds it"
region=${region:-$(toml_value aws_region)}
[[ "$region" =~ ^[a-z0-9-]+$ ]] || die "no valid aws_region in $config (got '$region'): set it, or pass -r REGION"
cid=$(toml_value enclave_config_cid)
cid=${cid:-15}
[[ "$cid" =~ ^[0-9]+$ ]] || die "enclave_config_cid in $config is not a number: '$cid'"
for tool in "$nitro_cli" "$vsock_proxy" "$helper"; do
  command -v "$tool" >/dev/null || die "$tool not found (install aws-nitro-enclaves-cli and tmkms-nitro-helper, or set TMKMS_NITRO_CLI, TMKMS_VSOCK_PROXY, TMKMS_HELPER)"
done

run_output=""
enclave_id=""
proxy_pid=""
helper_pid=""

# json_field NAME: a field of nitro-cli's JSON output in $run_output.
json_field() {
  printf '%s\n' "$run_output" | sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",}]*\)\"\{0,1\}.*/\1/p" | head -n 1
}

# cleanup stops what this script started, newest first. It runs once, on
# any exit (the EXIT trap), including after a signal. (ShellCheck 0.9 does
# not see calls from traps, hence the directive.)
# shellcheck disable=SC2317
cleanup() {
  trap - EXIT TERM INT
  if [ -n "$helper_pid" ] && kill -0 "$helper_pid" 2>/dev/null; then
    log "stopping the helper (pid $helper_pid)"
    kill -TERM "$helper_pid" 2>/dev/null || true
    wait "$helper_pid" 2>/dev/null || true
  fi
  if [ -z "$enclave_id" ] && [ -n "$run_output" ]; then
    enclave_id=$(json_field EnclaveID)
  fi
  if [ -n "$enclave_id" ]; then
    log "terminating enclave $enclave_id"
    "$nitro_cli" terminate-enclave --enclave-id "$enclave_id" >/dev/null || log "could not terminate enclave $enclave_id"
  fi
  if [ -n "$proxy_pid" ] && kill -0 "$proxy_pid" 2>/dev/null; then
    log "stopping vsock-proxy (pid $proxy_pid)"
    kill -TERM "$proxy_pid" 2>/dev/null || true
    wait "$proxy_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'log "SIGTERM: stopping"; cleanup; exit 0' TERM
trap 'log "SIGINT: stopping"; cleanup; exit 0' INT

# 1. The enclave.
run_args=(run-enclave --cpu-count "$cpus" --memory "$memory" --eif-path "$eif" --enclave-cid "$cid")
if [ "$debug" = 1 ]; then
  run_args+=(--debug-mode)
fi
run_output=$("$nitro_cli" "${run_args[@]}") ||
  die "nitro-cli run-enclave failed (an enclave left with CID $cid? 'nitro-cli describe-enclaves'; enough memory and CPUs in /etc/nitro_enclaves/allocator.yaml?)"
enclave_id=$(json_field EnclaveID)
[ -n "$enclave_id" ] || die "unexpected nitro-cli run-enclave output: $run_output"
enclave_cid=$(json_field EnclaveCID)
enclave_cid=${enclave_cid:-$cid}
log "enclave $enclave_id running with CID $enclave_cid"

# 2. vsock-proxy for the region's KMS endpoint.
proxy_args=("$kms_port" "kms.$region.amazonaws.com" 443)
if [ -n "$proxy_config" ]; then
  proxy_args+=(--config "$proxy_config")
fi
"$vsock_proxy" "${proxy_args[@]}" &
proxy_pid=$!
sleep 1
kill -0 "$proxy_pid" 2>/dev/null ||
  die "vsock-proxy exited at once: is kms.$region.amazonaws.com:443 in its allowlist (deploy/vsock-proxy.yaml), and port $kms_port free?"
log "vsock-proxy (pid $proxy_pid) forwards vsock port $kms_port to kms.$region.amazonaws.com:443"

# 3. The helper.
"$helper" start -c "$config" --cid "$enclave_cid" &
helper_pid=$!

# Wait until the helper or the proxy exits; `wait` on a short sleep lets the
# TERM/INT traps run at once.
while kill -0 "$helper_pid" 2>/dev/null && kill -0 "$proxy_pid" 2>/dev/null; do
  sleep 1 &
  wait $! || true
done
if ! kill -0 "$helper_pid" 2>/dev/null; then
  status=0
  wait "$helper_pid" || status=$?
  helper_pid=""
  die "tmkms-nitro-helper start exited with status $status"
fi
die "vsock-proxy (pid $proxy_pid) exited: the enclave cannot reach KMS"
