#!/usr/bin/env bash
# Checks that the enclave program is reproducible: tmkms-nitro-enclave built
# twice from clean copies of the tree, for linux/amd64 and linux/arm64, with
# the flags of deploy/enclave/Dockerfile, must be bit-for-bit identical.
# This is what CI can check without a Docker engine: the image adds only
# this file (fixed mode and mtime) to an empty rootfs, so the same binary
# means the same PCR0/PCR1/PCR2 for a given nitro-cli version.
#
# The two builds differ in everything that must not matter: directory (and
# its length), GOPATH, GOCACHE, TZ, umask and locale. By default each build
# keeps its own persistent cache (under $TMKMS_REPRO_CACHE, default
# ~/.cache/tmkms-nitro/repro/{a,b}), so the two never share a compiled
# package and, after the first run, only what changed is compiled (twice,
# independently). --cold uses empty caches instead: every package compiled
# from scratch in both builds (slow: minutes per build on 2 cores).
#
# Usage: deploy/check-reproducible.sh [--worktree] [--cold] [--arch "amd64 arm64"] [--out FILE]
#   --worktree  build the working tree (without .git) instead of `git archive HEAD`
#   --cold      empty build caches for both builds
#   --arch      the GOARCHes to check (default: amd64 arm64)
#   --out FILE  also write the sha256 sums there (compare with build-eif.sh's)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dockerfile="$root/deploy/enclave/Dockerfile"
readonly build_flags=(-trimpath -buildvcs=false "-ldflags=-s -w -buildid=")
# The same flags as the Dockerfile writes them.
readonly build_flags_text="-trimpath -buildvcs=false -ldflags='-s -w -buildid='"
readonly build_env=(CGO_ENABLED=0 GOOS=linux GOAMD64=v1 GOARM64=v8.0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly)
readonly package=./cmd/tmkms-nitro-enclave

die() { echo "check-reproducible: error: $*" >&2; exit 1; }
note() { echo "check-reproducible: $*" >&2; }

usage() { sed -n 's/^# \{0,1\}//; /^Usage:/,/^ *--out/p' "$0"; }

source_mode="head"
cold=0
archs="amd64 arm64"
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --worktree) source_mode=worktree ;;
    --cold) cold=1 ;;
    --arch) [ $# -ge 2 ] || die "--arch needs a value"; archs=$2; shift ;;
    --out) [ $# -ge 2 ] || die "--out needs a value"; out=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

command -v go >/dev/null || die "go is required"

# The Dockerfile must still build with the flags checked here.
check_dockerfile() {
  grep -qF -- "go build $build_flags_text -o /out/tmkms-nitro-enclave $package" "$dockerfile" ||
    die "$dockerfile no longer runs 'go build $build_flags_text -o /out/tmkms-nitro-enclave $package': update this script with it"
  local env_line kv
  env_line=$(grep '^ENV ' "$dockerfile") || die "$dockerfile has no ENV line"
  for kv in "${build_env[@]}"; do
    case " $env_line " in
      *" $kv "*) ;;
      *) die "$dockerfile no longer sets $kv: update this script with it" ;;
    esac
  done
  local want have
  want=$(sed -n 's/^ARG GO_IMAGE=golang:\([0-9.]*\).*/go\1/p' "$dockerfile")
  have=$(GOTOOLCHAIN=local go env GOVERSION)
  if [ "$want" != "$have" ]; then
    note "warning: the Dockerfile pins ${want:-an unknown Go}, this is $have: the builds are still compared, but their hash is not the image's"
  fi
}

# copy_tree DIR: a clean copy of the sources in DIR.
copy_tree() {
  mkdir -p "$1"
  if [ "$source_mode" = head ]; then
    git -C "$root" archive --format=tar HEAD | tar -x -C "$1"
  else
    tar -C "$root" --exclude=./.git -cf - . | tar -x -C "$1"
  fi
}

# build SRC CACHE GOPATH TZ UMASK LOCALE ARCH OUT
build() {
  local src=$1 cache=$2 gopath=$3 tz=$4 um=$5 locale=$6 arch=$7 bin=$8 start=$SECONDS
  (
    cd "$src"
    umask "$um"
    env -u GOEXPERIMENT -u GOFIPS140 -u GODEBUG -u GOROOT \
      GOENV=off GOWORK=off GOCACHE="$cache" GOPATH="$gopath" GOMODCACHE="$modcache" \
      TZ="$tz" LC_ALL="$locale" GOARCH="$arch" "${build_env[@]}" \
      go build "${build_flags[@]}" -o "$bin" "$package"
  )
  note "built $arch in $src ($((SECONDS - start))s)"
}

check_dockerfile
if [ "$source_mode" = head ]; then
  git -C "$root" rev-parse --verify -q HEAD >/dev/null || die "$root is not a git checkout with a commit: use --worktree"
  rev=$(git -C "$root" rev-parse HEAD)
  if [ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]; then
    note "checking HEAD ($rev); uncommitted changes are not included (--worktree includes them)"
  fi
else
  rev="working tree"
fi
modcache=$(GOTOOLCHAIN=local go env GOMODCACHE)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src_a="$work/a"
src_b="$work/b/a-longer/path-for-the-second-copy"
copy_tree "$src_a"
copy_tree "$src_b"
if [ "$cold" = 1 ]; then
  cache_a="$work/cache-a" cache_b="$work/cache-b"
else
  cache_root="${TMKMS_REPRO_CACHE:-$HOME/.cache/tmkms-nitro/repro}"
  cache_a="$cache_root/a" cache_b="$cache_root/b"
fi
mkdir -p "$cache_a" "$cache_b" "$work/gopath-a" "$work/gopath-b" "$work/out"

sums=""
for arch in $archs; do
  a="$work/out/a-$arch" b="$work/out/b-$arch"
  build "$src_a" "$cache_a" "$work/gopath-a" UTC 022 C "$arch" "$a"
  build "$src_b" "$cache_b" "$work/gopath-b" Pacific/Kiritimati 077 C.UTF-8 "$arch" "$b"
  sum_a=$(sha256sum "$a" | cut -d' ' -f1)
  sum_b=$(sha256sum "$b" | cut -d' ' -f1)
  if [ "$sum_a" != "$sum_b" ]; then
    echo "linux/$arch: NOT reproducible: $sum_a != $sum_b" >&2
    cmp "$a" "$b" >&2 || true
    diff <(go version -m "$a" | tail -n +2) <(go version -m "$b" | tail -n +2) >&2 || true
    exit 1
  fi
  echo "linux/$arch: reproducible, sha256 $sum_a ($(wc -c <"$b") bytes)"
  sums+="$sum_a  tmkms-nitro-enclave-linux-$arch"$'\n'
done
echo "source: $rev, $(go env GOVERSION), flags: ${build_flags[*]} ${build_env[*]}"
if [ -n "$out" ]; then
  printf '%s' "$sums" >"$out"
fi
