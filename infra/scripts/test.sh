#!/usr/bin/env bash
# Runs every test of merchantsync (what `make test` and CI run): cfn-lint on
# template.yaml, go vet, gofmt, the unit and integration tests on one
# DynamoDB Local and one moto server shared by all packages, the emulators,
# the Rakuten sandbox and svix checking our webhook signatures, then a short
# run of each fuzzer and the OpenAPI lint. Ports: $DYNAMODB_LOCAL_PORT (8765)
# and $MOTO_PORT (8766).
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
moto_port=${MOTO_PORT:-8766}
# Both stop on exit, whichever of them started (stop is a no-op otherwise).
trap 'infra/scripts/moto.sh stop "$moto_port"; infra/scripts/dynamodb-local.sh stop "$port"' EXIT
export AWS_ENDPOINT_URL_DYNAMODB
AWS_ENDPOINT_URL_DYNAMODB=$(infra/scripts/dynamodb-local.sh start "$port")

# One moto server (SQS, Secrets Manager, EventBridge, KMS) for every test
# binary: internal/testenv reads MERCHANTSYNC_MOTO_ENDPOINT, the SDK's
# default configuration the AWS_ENDPOINT_URL_* variables.
export MERCHANTSYNC_MOTO_ENDPOINT AWS_ENDPOINT_URL_SQS AWS_ENDPOINT_URL_SECRETS_MANAGER AWS_ENDPOINT_URL_EVENTBRIDGE AWS_ENDPOINT_URL_KMS
MERCHANTSYNC_MOTO_ENDPOINT=$(infra/scripts/moto.sh start "$moto_port")
AWS_ENDPOINT_URL_SQS=$MERCHANTSYNC_MOTO_ENDPOINT
AWS_ENDPOINT_URL_SECRETS_MANAGER=$MERCHANTSYNC_MOTO_ENDPOINT
AWS_ENDPOINT_URL_EVENTBRIDGE=$MERCHANTSYNC_MOTO_ENDPOINT
AWS_ENDPOINT_URL_KMS=$MERCHANTSYNC_MOTO_ENDPOINT

echo "== go vet"
go vet ./...
echo "== gofmt"
infra/scripts/gofmt-check.sh

echo "== go test (DynamoDB Local at $AWS_ENDPOINT_URL_DYNAMODB, moto at $MERCHANTSYNC_MOTO_ENDPOINT)"
go test -count=1 -timeout 15m ${GOTESTFLAGS:-} ./...

if [[ -x infra/scripts/fuzz.sh ]]; then
  echo "== fuzz (short)"
  infra/scripts/fuzz.sh "${FUZZTIME:-5s}"
fi
if [[ -x infra/scripts/openapi-lint.sh ]]; then
  echo "== openapi lint"
  infra/scripts/openapi-lint.sh
fi
