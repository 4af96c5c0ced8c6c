#!/usr/bin/env bash
# Fails, listing them, when Go files are not gofmt-formatted. `make fmt` and
# `make test` both run it.
set -euo pipefail
cd "$(dirname "$0")/../.."
files=$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*')
unformatted=$(gofmt -l $files)
if [[ -n "$unformatted" ]]; then
  echo "gofmt needed:"
  echo "$unformatted"
  exit 1
fi
