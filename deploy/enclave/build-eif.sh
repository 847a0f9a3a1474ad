#!/usr/bin/env bash
# Builds the enclave image (deploy/enclave/Dockerfile) from a clean export of
# one commit, turns it into an EIF with nitro-cli build-enclave, and prints
# the PCRs a KMS key policy pins. Run it on the EC2 instance (or any host
# with Docker and the Nitro Enclaves CLI of the same version: the CLI's
# kernel and init blobs are part of PCR0).
#
# It also prints the SHA-256 of the enclave binary in the image: for the
# same commit it must equal what deploy/check-reproducible.sh (run by CI)
# prints, which ties the PCRs to the reviewed source.
#
# Usage: deploy/enclave/build-eif.sh [-o OUT.eif] [-r REV] [-t TAG] [--worktree] [--image-only]
#   -o OUT.eif     where to write the EIF (default ~/.tmkms/tmkms.eif)
#   -r REV         the commit to build (default HEAD)
#   -t TAG         the Docker image tag (default tmkms-nitro-enclave:<commit>)
#   --worktree     build the working tree instead of a commit (not reproducible)
#   --image-only   build the image and print the binary's hash; no nitro-cli needed
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out="${HOME:-/root}/.tmkms/tmkms.eif"
rev=HEAD
tag=""
worktree=0
image_only=0

die() { echo "build-eif: error: $*" >&2; exit 1; }
usage() { sed -n 's/^# \{0,1\}//; /^Usage:/,/^ *--image-only/p' "$0"; }

while [ $# -gt 0 ]; do
  case "$1" in
    -o) [ $# -ge 2 ] || die "-o needs a file"; out=$2; shift ;;
    -r) [ $# -ge 2 ] || die "-r needs a revision"; rev=$2; shift ;;
    -t) [ $# -ge 2 ] || die "-t needs a tag"; tag=$2; shift ;;
    --worktree) worktree=1 ;;
    --image-only) image_only=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

require() {
  command -v "$1" >/dev/null 2>&1 || die "$1 not found. $2"
}
require docker "Install Docker and start it (Amazon Linux 2023: sudo dnf install -y docker && sudo systemctl enable --now docker), and add your user to the docker group."
if [ "$image_only" = 0 ]; then
  require nitro-cli "Install the AWS Nitro Enclaves CLI (Amazon Linux 2023: sudo dnf install -y aws-nitro-enclaves-cli aws-nitro-enclaves-cli-devel), or pass --image-only to build only the Docker image."
fi
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine: is it running (sudo systemctl start docker), and is ${USER:-this user} in the docker group?"

tmp=$(mktemp -d)
container=""
cleanup() {
  if [ -n "$container" ]; then docker rm -f "$container" >/dev/null 2>&1 || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

if [ "$worktree" = 1 ]; then
  echo "build-eif: building the working tree: the result is not tied to a commit" >&2
  tar -C "$root" --exclude=./.git -cf "$tmp/context.tar" .
  epoch=0
  tag=${tag:-tmkms-nitro-enclave:worktree}
else
  require git "The build context is a 'git archive' of the commit; use --worktree without git."
  commit=$(git -C "$root" rev-parse --verify "$rev^{commit}") || die "no commit $rev"
  git -C "$root" archive --format=tar -o "$tmp/context.tar" "$commit"
  epoch=$(git -C "$root" log -1 --format=%ct "$commit")
  tag=${tag:-tmkms-nitro-enclave:${commit:0:12}}
  echo "build-eif: building commit $commit" >&2
fi

DOCKER_BUILDKIT=1 docker build --build-arg SOURCE_DATE_EPOCH="$epoch" \
  -f deploy/enclave/Dockerfile -t "$tag" - <"$tmp/context.tar"

container=$(docker create "$tag")
docker cp "$container:/tmkms-nitro-enclave" "$tmp/tmkms-nitro-enclave"
arch=$(docker image inspect --format '{{.Architecture}}' "$tag")
binary_sum=$(sha256sum "$tmp/tmkms-nitro-enclave" | cut -d' ' -f1)
echo "image $tag (linux/$arch)"
echo "enclave binary sha256: $binary_sum"
echo "  (deploy/check-reproducible.sh prints the same hash for linux/$arch of this commit)"
if [ "$image_only" = 1 ]; then
  exit 0
fi

mkdir -p "$(dirname "$out")"
nitro-cli build-enclave --docker-uri "$tag" --output-file "$out" >"$tmp/build.json"
echo "EIF: $out ($(nitro-cli --version 2>/dev/null || echo 'nitro-cli'))"
if command -v jq >/dev/null 2>&1; then
  jq -r '.Measurements | to_entries[] | select(.key | startswith("PCR")) | "\(.key): \(.value)"' "$tmp/build.json"
else
  sed -n 's/.*"\(PCR[0-9]*\)": *"\([0-9a-fA-F]*\)".*/\1: \2/p' "$tmp/build.json"
fi
if command -v tmkms-nitro-helper >/dev/null 2>&1; then
  echo "tmkms-nitro-helper pcr --eif $out:"
  tmkms-nitro-helper pcr --eif "$out"
fi
cat <<EOF

Next: pin PCR0 (and PCR4 of this instance) in the KMS key policy:
  tmkms-nitro-helper policy --account ACCOUNT --role ROLE --pcr0 <PCR0> --pcr4 \$(tmkms-nitro-helper pcr --instance-id INSTANCE_ID | cut -d' ' -f2)
When upgrading, add the new PCR0 next to the old one before restarting (docs/operations.md, upgrading).
EOF
