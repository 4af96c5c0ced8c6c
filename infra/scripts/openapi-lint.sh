#!/usr/bin/env bash
# Lints the REST contract (docs/openapi.yaml) with Redocly CLI, using the
# rules in redocly.yaml at the repository root. `make test` runs it through
# infra/scripts/test.sh.
#
#   infra/scripts/openapi-lint.sh               lint only
#   infra/scripts/openapi-lint.sh --build-docs  lint, then render the reference
#                                               page to .cache/docs/index.html
#
# Redocly CLI is pinned and installed once with npm into .cache/npm-tools
# (no global install, no npx download on every run); reruns reuse it.
set -euo pipefail
cd "$(dirname "$0")/../.."

REDOCLY_VERSION=2.77.0 # needs Node >= 20.19 (20.x) or >= 22.12
tools=.cache/npm-tools
redocly=$tools/node_modules/.bin/redocly

build_docs=false
for arg in "$@"; do
  case $arg in
    --build-docs) build_docs=true ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "openapi-lint.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

installed=$(node -p "try{require('./$tools/node_modules/@redocly/cli/package.json').version}catch(e){''}" 2>/dev/null || true)
if [[ ! -x $redocly || $installed != "$REDOCLY_VERSION" ]]; then
  echo "installing @redocly/cli@$REDOCLY_VERSION into $tools"
  mkdir -p "$tools"
  [[ -f $tools/package.json ]] || echo '{"name":"merchantsync-npm-tools","private":true}' >"$tools/package.json"
  npm install --prefix "$tools" --no-audit --no-fund --save-exact --loglevel=error \
    "@redocly/cli@$REDOCLY_VERSION" >&2
fi

export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
"$redocly" lint --config redocly.yaml docs/openapi.yaml

if $build_docs; then
  mkdir -p .cache/docs
  # --inlineBundle: the page carries Redoc itself (no CDN), so it works offline.
  "$redocly" build-docs --config redocly.yaml --inlineBundle --title "merchantsync API" docs/openapi.yaml -o .cache/docs/index.html
  echo "reference page: .cache/docs/index.html"
fi
