#!/usr/bin/env bash
# CI for the deployment files (run by .ci/run): shellcheck on every script,
# systemd-analyze verify on the unit, the alert rules' unit tests (promtool
# test rules deploy/monitoring/alerts_test.yml), and the enclave binary's
# reproducibility (deploy/check-reproducible.sh). It installs shellcheck and
# systemd from the OS packages (Debian/Ubuntu apt-get) when they are missing,
# and takes promtool out of the prometheus package without installing it (no
# service, no user).
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; return; fi
  have sudo || { echo "ci: '$*' needs root or sudo" >&2; exit 1; }
  sudo "$@"
}

if ! have shellcheck || ! have systemd-analyze; then
  as_root apt-get update -qq
  as_root apt-get install -y -qq shellcheck systemd >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# promtool: the one on $PATH, else the prometheus package's, unpacked.
promtool=promtool
if ! have promtool; then
  # apt-get download needs the package lists, which a fresh machine lacks.
  (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1) || {
    as_root apt-get update -qq
    (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1)
  }
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/prometheus"
  promtool="$tmp/prometheus/usr/bin/promtool"
fi

echo "--- shellcheck ($(shellcheck --version | sed -n 's/^version: //p'))"
scripts=(deploy/*.sh deploy/enclave/*.sh)
shellcheck "${scripts[@]}"
echo "ok: ${scripts[*]}"

echo "--- systemd-analyze verify ($(systemd-analyze --version | head -n 1))"
# verify insists that ExecStart's program exists: point the unit at a stand-in.
printf '#!/bin/sh\nexit 0\n' >"$tmp/tmkms-nitro-helper"
chmod 0755 "$tmp/tmkms-nitro-helper"
sed "s#/usr/local/bin/tmkms-nitro-helper#$tmp/tmkms-nitro-helper#g" deploy/systemd/tmkms-nitro.service >"$tmp/tmkms-nitro.service"
status=0
out=$(systemd-analyze verify "$tmp/tmkms-nitro.service" 2>&1) || status=$?
# Unknown keys are only warnings for systemd-analyze: fail on any message
# about the unit.
if [ "$status" != 0 ] || printf '%s\n' "$out" | grep -qF tmkms-nitro.service; then
  printf '%s\n' "$out" >&2
  echo "ci: systemd-analyze verify failed for deploy/systemd/tmkms-nitro.service" >&2
  exit 1
fi
echo "ok: deploy/systemd/tmkms-nitro.service"

echo "--- alert rules: promtool test rules ($("$promtool" --version 2>&1 | head -n 1))"
"$promtool" check rules deploy/monitoring/alerts.yml
"$promtool" test rules deploy/monitoring/alerts_test.yml
echo "ok: deploy/monitoring/alerts.yml"

echo "--- enclave binary reproducibility"
deploy/check-reproducible.sh
