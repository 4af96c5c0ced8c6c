#!/usr/bin/env bash
# Runs every test of merchantsync (what `make test` and CI run): cfn-lint on
# template.yaml, go vet, gofmt, the unit and integration tests on one
# DynamoDB Local shared by all packages, the emulators, the Rakuten sandbox
# and svix checking our webhook signatures, then a short run of each fuzzer
# and the OpenAPI lint.
set -euo pipefail
cd "$(dirname "$0")/../.."

# The pinned cfn-lint, and the SAM translator the infra tests run.
PATH="$(infra/scripts/install-cfn-lint.sh):$PATH"
echo "== cfn-lint"
cfn-lint --non-zero-exit-code warning -- template.yaml

# The independent webhook signature verifier (internal/webhook); a no-op
# once installed.
infra/scripts/install-svix.sh

port=${DYNAMODB_LOCAL_PORT:-8765}
export AWS_ENDPOINT_URL_DYNAMODB
AWS_ENDPOINT_URL_DYNAMODB=$(infra/scripts/dynamodb-local.sh start "$port")
trap 'infra/scripts/dynamodb-local.sh stop "$port"' EXIT

echo "== go vet"
go vet ./...
echo "== gofmt"
infra/scripts/gofmt-check.sh

echo "== go test (DynamoDB Local at $AWS_ENDPOINT_URL_DYNAMODB)"
go test -count=1 -timeout 15m ${GOTESTFLAGS:-} ./...

if [[ -x infra/scripts/fuzz.sh ]]; then
  echo "== fuzz (short)"
  infra/scripts/fuzz.sh "${FUZZTIME:-5s}"
fi
if [[ -x infra/scripts/openapi-lint.sh ]]; then
  echo "== openapi lint"
  infra/scripts/openapi-lint.sh
fi
