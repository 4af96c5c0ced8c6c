#!/usr/bin/env bash
# Installs svix, the Svix webhook library for Node.js, pinned, into
# .cache/npm-tools (next to Redocly; no global install). Its Webhook.verify
# implements the Standard Webhooks verification, written independently of
# our Go code: internal/webhook's TestSignaturesVerifyWithSvix runs it
# through infra/scripts/svix-verify.cjs. `make deps` and `make test` call
# this; a second run is a fast no-op, FORCE=1 reinstalls.
#
# svix 2.x needs Node >= 22; 1.99.1 is the newest release that runs on the
# project's Node 20. It verifies with the standardwebhooks package, which it
# pins to 1.0.0. The install fails (and removes svix again) unless the
# tarball npm fetched has the integrity recorded here.
set -euo pipefail
cd "$(dirname "$0")/../.."

SVIX_VERSION=1.99.1
SVIX_INTEGRITY='sha512-JfpvbAg5iT5NagDAfOq3e6Ci6NbOMbMm6C3DnfDBB60m2JDK+Z2hXPE9XNAmutb53DCdPoih1V70IbklZnX09A=='
tools=.cache/npm-tools

die() { echo "install-svix: ERROR: $*" >&2; exit 1; }
for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required (Node.js 20 or newer)"
done

installed=$(node -p "try{require('./$tools/node_modules/svix/package.json').version}catch(e){''}" 2>/dev/null || true)
if [[ ${FORCE:-} != 1 && $installed == "$SVIX_VERSION" ]]; then
  exit 0
fi

echo "install-svix: installing svix@$SVIX_VERSION into $tools" >&2
mkdir -p "$tools"
[[ -f $tools/package.json ]] || echo '{"name":"merchantsync-npm-tools","private":true}' >"$tools/package.json"
npm install --prefix "$tools" --no-audit --no-fund --save-exact --loglevel=error "svix@$SVIX_VERSION" >&2

got=$(node -p "require('./$tools/package-lock.json').packages['node_modules/svix'].integrity")
if [[ $got != "$SVIX_INTEGRITY" ]]; then
  npm uninstall --prefix "$tools" --no-audit --no-fund --loglevel=error svix >&2 || true
  die "integrity mismatch for svix@$SVIX_VERSION: expected $SVIX_INTEGRITY, got $got"
fi
echo "install-svix: svix@$SVIX_VERSION installed, integrity verified" >&2
