#!/usr/bin/env bash
# Runs every fuzz test of merchantsync for a short while (CI: 5s each).
#
#   infra/scripts/fuzz.sh [duration]      duration as go test -fuzztime takes it: 5s (default), 1m, 10000x
#
# It finds the Fuzz* functions package by package (go test -list '^Fuzz'),
# runs them one at a time with one worker (-parallel 1: CI machines are
# small and shared), prints one line per fuzzer and fails if any fuzzer
# failed. A failing input is written by go test to
# <package>/testdata/fuzz/<FuzzName>/; check it in with the fix.
# The seed corpora (f.Add and testdata/fuzz) also run in every plain go test.
#
# FUZZMINIMIZETIME (default 2s) bounds go's minimization of each new
# interesting or failing input: with its 60s default, minimizing one large
# input (the seeds include bodies of several KiB) can take a whole short
# run and leave the fuzzer executing nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."

duration=${1:-5s}
minimize=${FUZZMINIMIZETIME:-2s}
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

# Only packages whose test files declare a fuzz test: listing compiles the
# test binary, so skip the others.
pkgs=()
while read -r pkg dir files; do
  [[ -n "$files" ]] || continue
  if (cd "$dir" && grep -lqE '^func Fuzz[A-Z0-9_]' $files); then
    pkgs+=("$pkg")
  fi
done < <(go list -f '{{.ImportPath}} {{.Dir}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' ./...)

module=$(go list -m)
failed=0 total=0 start=$SECONDS
for pkg in "${pkgs[@]}"; do
  rel=./${pkg#"$module"/}
  if ! names=$(go test -list '^Fuzz' "$rel" 2>"$log/list.err" | grep -E '^Fuzz'); then
    echo "FAIL $rel: cannot list fuzz tests"; cat "$log/list.err"; failed=$((failed + 1)); continue
  fi
  for name in $names; do
    total=$((total + 1))
    out="$log/$total.out"
    t0=$SECONDS
    for try in 1 2; do
      status=FAIL
      if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$duration" -fuzzminimizetime "$minimize" -parallel 1 "$rel" >"$out" 2>&1; then
        status=ok
        break
      fi
      # Go's fuzzing coordinator sometimes reports its own fuzztime ending
      # during a minimization as "context deadline exceeded" with no input
      # at fault. A real failure always writes its input ("Failing input
      # written to ..."). Retry such a run once; only a real failure counts.
      if grep -q 'Failing input written to' "$out" || ! grep -q 'context deadline exceeded' "$out"; then
        break
      fi
      status=flaky
    done
    if [[ $status == FAIL ]]; then
      failed=$((failed + 1))
    fi
    execs=$(grep -oE 'execs: [0-9]+' "$out" | tail -1 | grep -oE '[0-9]+' || true)
    printf '%-4s %-28s %-24s %4ss  execs=%s\n' "$status" "$rel" "$name" "$((SECONDS - t0))" "${execs:-?}"
    if [[ $status != ok ]]; then
      sed 's/^/     | /' "$out" | tail -40
    fi
  done
done

echo "fuzz: $total fuzzers, $failed failed, $((SECONDS - start))s"
[[ $total -gt 0 ]] || { echo "fuzz: no fuzz tests found"; exit 1; }
[[ $failed -eq 0 ]]
