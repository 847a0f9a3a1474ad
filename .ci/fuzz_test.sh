#!/usr/bin/env bash
# Tests .ci/fuzz's verdicts without building or fuzzing anything: a stub go
# command replays outputs recorded from real `go test -fuzz` runs
# (.ci/testdata/*.out) and, where the real run wrote a reproducer, writes it
# to testdata/fuzz/ as the engine does. Each case runs .ci/fuzz against a
# throwaway module tree, so the repository is never touched. Runs in a
# second or two; CI runs it before the real fuzz step.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
recorded="$here/testdata"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The stub go: call N replays line N of $STUB_DIR/plan,
# "OUTPUT RC [REPRO TARGET/NAME]": it prints OUTPUT (a file in
# .ci/testdata, or an absolute path), writes the reproducer REPRO where the
# engine would (testdata/fuzz/TARGET/NAME in the package), and exits RC.
mkdir -p "$tmp/bin"
cat >"$tmp/bin/go" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
n=$(($(cat "$STUB_DIR/calls" 2>/dev/null || echo 0) + 1))
echo "$n" >"$STUB_DIR/calls"
echo "$*" >>"$STUB_DIR/args"
read -r out rc repro dest < <(sed -n "${n}p" "$STUB_DIR/plan")
case "$out" in /*) ;; *) out="$RECORDED/$out" ;; esac
pkg="${*: -1}"
if [ -n "${repro:-}" ]; then
  mkdir -p "$(dirname "$pkg/testdata/fuzz/$dest")"
  cp "$RECORDED/$repro" "$pkg/testdata/fuzz/$dest"
fi
cat "$out"
exit "$rc"
EOF
chmod +x "$tmp/bin/go"

failures=0
case_dir=""

# new_case makes a module tree with two fuzz targets in internal/cms and one
# in internal/ha (the real layout, so discovery is exercised too) and an
# empty plan.
new_case() {
  case_dir="$tmp/$1"
  mkdir -p "$case_dir/root/internal/cms" "$case_dir/root/internal/ha" "$case_dir/stub"
  printf 'package cms\n\nfunc FuzzParse(f *testing.F) {}\n\nfunc FuzzOpen(f *testing.F) {}\n' >"$case_dir/root/internal/cms/fuzz_test.go"
  printf 'package ha\n\nfunc FuzzOpen(f *testing.F) {}\n' >"$case_dir/root/internal/ha/record_test.go"
  : >"$case_dir/stub/plan"
}

plan() { echo "$*" >>"$case_dir/stub/plan"; }

# run_fuzz runs .ci/fuzz in the case's tree; its output goes to out, its
# exit status to rc.
run_fuzz() {
  local rc=0
  FUZZ_ROOT="$case_dir/root" FUZZ_GO="$tmp/bin/go" STUB_DIR="$case_dir/stub" RECORDED="$recorded" \
    FUZZTIME=10s "$here/fuzz" "$@" >"$case_dir/out" 2>&1 || rc=$?
  echo "$rc" >"$case_dir/rc"
}

fail() {
  echo "FAIL: $1: $2"
  echo "----- .ci/fuzz output -----"
  cat "$case_dir/out"
  echo "-----"
  failures=$((failures + 1))
}

expect_rc() {
  local got
  got=$(cat "$case_dir/rc")
  if [ "$got" != "$2" ]; then fail "$1" "exit status $got, want $2"; fi
}
expect_calls() {
  local got
  got=$(cat "$case_dir/stub/calls" 2>/dev/null || echo 0)
  if [ "$got" != "$2" ]; then fail "$1" "go test ran $got times, want $2"; fi
}
expect_out() {
  if ! grep -qF -- "$2" "$case_dir/out"; then fail "$1" "output lacks: $2"; fi
}
expect_no_out() {
  if grep -qF -- "$2" "$case_dir/out"; then fail "$1" "output has: $2"; fi
}
expect_last_line() {
  local got
  got=$(tail -n 1 "$case_dir/out")
  if [[ "$got" != "$2"* ]]; then fail "$1" "last line is \"$got\", want it to start with \"$2\""; fi
}

repro_name=$(sed -n 's/^.*Failing input written to testdata\/fuzz\/FuzzOpen\/\([^[:space:]]*\).*$/\1/p' "$recorded/crasher.out")

t="pass: one line per target, nothing else"
new_case pass
plan pass.out 0
run_fuzz ./internal/cms:FuzzOpen
expect_rc "$t" 0
expect_calls "$t" 1
expect_out "$t" "ok    ./internal/cms FuzzOpen ("
expect_no_out "$t" "----- output of"
expect_last_line "$t" "fuzz: 1 targets: 1 passed (0 after a deadline flake), 0 failed"

t="every target is found and run, with the flags CI relies on"
new_case discover
plan pass.out 0
plan pass.out 0
plan pass.out 0
run_fuzz
expect_rc "$t" 0
expect_calls "$t" 3
expect_out "$t" "ok    ./internal/cms FuzzParse ("
expect_out "$t" "ok    ./internal/cms FuzzOpen ("
expect_out "$t" "ok    ./internal/ha FuzzOpen ("
if ! grep -qxF -- "test -run=^\$ -fuzz=^FuzzParse\$ -fuzztime=10s -fuzzminimizetime=3s -timeout=10m ./internal/cms" "$case_dir/stub/args"; then
  fail "$t" "go test arguments: $(head -n 1 "$case_dir/stub/args")"
fi

t="reproducer written: fails at once, prints output, path, contents and the replay command"
new_case crasher
plan crasher.out 1 crasher.repro "FuzzOpen/$repro_name"
run_fuzz ./internal/cms:FuzzOpen
expect_rc "$t" 1
expect_calls "$t" 1
expect_out "$t" "----- output of go test -fuzz=^FuzzOpen\$ -fuzztime=10s ./internal/cms (attempt 1, exit status 1"
expect_out "$t" "$(grep -m 1 'Failing input written to' "$recorded/crasher.out")"
expect_out "$t" "FAIL  ./internal/cms FuzzOpen: the fuzzer found an input that fails"
expect_out "$t" "reproducer: ./internal/cms/testdata/fuzz/FuzzOpen/$repro_name"
expect_out "$t" "$(sed -n 2p "$recorded/crasher.repro")"
expect_out "$t" "replay it: go test -run='^FuzzOpen\$/^$repro_name\$' ./internal/cms"
expect_last_line "$t" "fuzz: 1 targets: 0 passed (0 after a deadline flake), 1 failed: ./internal/cms FuzzOpen;"

t="reproducer found by the new file alone (output without the engine's line)"
new_case crasher-file-only
grep -v 'Failing input written to' "$recorded/crasher.out" >"$case_dir/stub/quiet.out"
plan "$case_dir/stub/quiet.out" 1 crasher.repro "FuzzOpen/$repro_name"
run_fuzz ./internal/cms:FuzzOpen
expect_rc "$t" 1
expect_out "$t" "reproducer: ./internal/cms/testdata/fuzz/FuzzOpen/$repro_name"

t="reproducer named by the engine but already there (untracked, from an earlier run)"
new_case crasher-not-new
mkdir -p "$case_dir/root/internal/cms/testdata/fuzz/FuzzOpen"
cp "$recorded/crasher.repro" "$case_dir/root/internal/cms/testdata/fuzz/FuzzOpen/$repro_name"
plan crasher.out 1
run_fuzz ./internal/cms:FuzzOpen
expect_rc "$t" 1
expect_out "$t" "reproducer: ./internal/cms/testdata/fuzz/FuzzOpen/$repro_name"
expect_no_out "$t" "FLAKE"

t="deadline flake, then a pass: reported, retried once, passes"
new_case flake-once
plan deadline.out 1
plan pass.out 0
run_fuzz ./internal/cms:FuzzOpen
expect_rc "$t" 0
expect_calls "$t" 2
expect_out "$t" "context deadline exceeded"
expect_out "$t" "FLAKE ./internal/cms FuzzOpen: only 'context deadline exceeded', no reproducer"
expect_out "$t" "ok    ./internal/cms FuzzOpen ("
expect_out "$t" "on the second attempt)"
expect_last_line "$t" "fuzz: 1 targets: 1 passed (1 after a deadline flake), 0 failed"

t="deadline flake twice: fails"
new_case flake-twice
plan deadline.out 1
plan deadline.out 1
run_fuzz ./internal/cms:FuzzOpen
expect_rc "$t" 1
expect_calls "$t" 2
expect_out "$t" "FAIL  ./internal/cms FuzzOpen: 'context deadline exceeded' twice in a row"
expect_last_line "$t" "fuzz: 1 targets: 0 passed (0 after a deadline flake), 1 failed: ./internal/cms FuzzOpen;"

t="deadline flake, then a reproducer: fails with the reproducer"
new_case flake-then-crasher
plan deadline.out 1
plan crasher.out 1 crasher.repro "FuzzOpen/$repro_name"
run_fuzz ./internal/cms:FuzzOpen
expect_rc "$t" 1
expect_calls "$t" 2
expect_out "$t" "replay it: go test -run='^FuzzOpen\$/^$repro_name\$' ./internal/cms"

t="build failure: fails at once, output printed, no retry"
new_case build-failed
plan build-failed.out 1
run_fuzz ./internal/cms:FuzzOpen
expect_rc "$t" 1
expect_calls "$t" 1
expect_out "$t" "[build failed]"
expect_out "$t" "FAIL  ./internal/cms FuzzOpen: go test failed (exit status 1) without writing a reproducer"

t="worker killed (as by the OOM killer): no reproducer, not the deadline: fails, no retry"
new_case killed
plan killed.out 1
run_fuzz ./internal/cms:FuzzOpen
expect_rc "$t" 1
expect_calls "$t" 1
expect_out "$t" "fuzzing process terminated by unexpected signal"
expect_out "$t" "FAIL  ./internal/cms FuzzOpen: go test failed (exit status 1) without writing a reproducer"

t="the deadline error next to anything else is no flake"
new_case deadline-and-more
sed 's/^\([[:space:]]*\)context deadline exceeded$/&\n\1fuzz_test.go:88: Open = 00, <nil>; want nil and a sentinel/' "$recorded/deadline.out" >"$case_dir/stub/more.out"
plan "$case_dir/stub/more.out" 1
run_fuzz ./internal/cms:FuzzOpen
expect_rc "$t" 1
expect_calls "$t" 1
expect_out "$t" "want nil and a sentinel"
expect_no_out "$t" "FLAKE"

t="one failure does not stop the other targets"
new_case keep-going
plan pass.out 0
plan crasher.out 1 crasher.repro "FuzzOpen/$repro_name"
plan pass.out 0
run_fuzz
expect_rc "$t" 1
expect_calls "$t" 3
expect_out "$t" "ok    ./internal/ha FuzzOpen ("
expect_last_line "$t" "fuzz: 3 targets: 2 passed (0 after a deadline flake), 1 failed: ./internal/cms FuzzOpen;"

t="an unknown package is an error"
new_case no-such-package
run_fuzz ./internal/nope
expect_rc "$t" 1
expect_calls "$t" 0

if [ "$failures" -gt 0 ]; then
  echo "fuzz_test: $failures failed checks"
  exit 1
fi
echo "fuzz_test: ok (pass, discovery, reproducer, flake retried, flake twice, build failure, killed worker, keep going)"
