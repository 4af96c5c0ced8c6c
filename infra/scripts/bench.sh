#!/usr/bin/env bash
# Runs merchantsync's benchmarks and summarises them with benchstat
# (`make bench`). Results go to .cache/bench/<name>.txt; pass one to
# benchstat next to an older run to compare.
#
#   infra/scripts/bench.sh            all benchmarks, COUNT (default 6) runs each
#   COUNT=3 infra/scripts/bench.sh    fewer runs
# Needs DynamoDB Local (installed by install-dynamodb-local.sh; started here).
set -euo pipefail
cd "$(dirname "$0")/../.."

BENCHSTAT=golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
count=${COUNT:-6}
out=.cache/bench
mkdir -p "$out"

port=${DYNAMODB_LOCAL_PORT:-8767}
export AWS_ENDPOINT_URL_DYNAMODB
AWS_ENDPOINT_URL_DYNAMODB=$(infra/scripts/dynamodb-local.sh start "$port")
trap 'infra/scripts/dynamodb-local.sh stop "$port"' EXIT

run() { # name package pattern benchtime
  echo "== $1" >&2
  go test -run '^$' -bench "$3" -benchtime "$4" -count "$count" "$2" 2>&1 | grep -E '^(goos|goarch|pkg|cpu|Benchmark)' >"$out/$1.txt"
  go run "$BENCHSTAT" "$out/$1.txt"
}

run diff        ./internal/syncer 'BenchmarkDiff'                 20x
run sync        ./internal/syncer 'BenchmarkSync/merchants=10000' 3x
# The sync function runs with GOGC=400 and GOMEMLIMIT=384MiB (template.yaml).
GOGC=400 GOMEMLIMIT=384MiB run sync-gogc400 ./internal/syncer 'BenchmarkSync/merchants=10000' 3x
GOGC=400 GOMEMLIMIT=384MiB run sync50k ./internal/syncer 'BenchmarkSync/merchants=50000' 1x
run decodepage  ./internal/rakuten 'BenchmarkDecodePartnershipsPage' 200x
run relitem     ./internal/dynamo  'BenchmarkRelFromItem'            20000x
run scheduler   ./internal/syncer 'BenchmarkScheduler'            1x
run relpage     ./internal/httpapi 'BenchmarkListRelationships'   50x
run coldstart   ./infra            'BenchmarkColdStart'           20x
run binarysize  ./infra            'BenchmarkBinarySize'          1x
