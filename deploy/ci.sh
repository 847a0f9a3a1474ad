#!/usr/bin/env bash
# CI for the deployment files (run by .ci/run): shellcheck on every script,
# systemd-analyze verify on the unit, and the enclave binary's
# reproducibility (deploy/check-reproducible.sh). It installs shellcheck and
# systemd from the OS packages (Debian/Ubuntu apt-get) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1; }

if ! have shellcheck || ! have systemd-analyze; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    have sudo || { echo "ci: shellcheck and systemd-analyze are required (apt-get install shellcheck systemd)" >&2; exit 1; }
    sudo=sudo
  fi
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq shellcheck systemd >/dev/null
fi

echo "--- shellcheck ($(shellcheck --version | sed -n 's/^version: //p'))"
scripts=(deploy/*.sh deploy/enclave/*.sh)
shellcheck "${scripts[@]}"
echo "ok: ${scripts[*]}"

echo "--- systemd-analyze verify ($(systemd-analyze --version | head -n 1))"
# verify insists that ExecStart's program exists: point the unit at a stand-in.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
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

echo "--- enclave binary reproducibility"
deploy/check-reproducible.sh
