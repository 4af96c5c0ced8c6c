#!/usr/bin/env bash
# Installs DynamoDB Local (AWS's jar, shipped inside the npm package
# amplify-dynamodb-simulator) into $REPO/.cache/dynamodb-local/ and Java 17
# when no `java` is on PATH. Idempotent: a second run is a fast no-op.
#
# Usage: infra/scripts/install-dynamodb-local.sh
#   Prints the jar's path on its last line. Needs npm, openssl, base64.
#   FORCE=1 reinstalls. Exits non-zero (and installs nothing) when the
#   downloaded tarball's sha512 does not match the pinned integrity.
set -euo pipefail

PKG=amplify-dynamodb-simulator
VERSION=2.9.30
INTEGRITY='sha512-xTeeRLvzEfqyd5lh3bH4c0kHvSHHmmhD5ZDsHFKAQ5g2Zl6JqlFdutaQhCLHzxEp6Ry1o7TB6niIoXuQAnSewQ=='

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEST="$REPO/.cache/dynamodb-local"
STAMP="$DEST/.installed"

log() { echo "install-dynamodb-local: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ensure_java() {
  if command -v java >/dev/null 2>&1; then
    return
  fi
  log "java not found: installing openjdk-17-jre-headless"
  command -v apt-get >/dev/null 2>&1 || die "java is missing and apt-get is unavailable: install Java 17 yourself"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends openjdk-17-jre-headless
  command -v java >/dev/null 2>&1 || die "java still missing after apt-get install"
}

want="$PKG@$VERSION $INTEGRITY"
if [[ "${FORCE:-}" != 1 && -f "$STAMP" && "$(cat "$STAMP")" == "$want" \
      && -f "$DEST/DynamoDBLocal.jar" && -d "$DEST/DynamoDBLocal_lib" ]]; then
  ensure_java
  echo "$DEST/DynamoDBLocal.jar"
  exit 0
fi

for tool in npm openssl base64 tar; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

log "fetching $PKG@$VERSION"
tgz_name=$(cd "$work" && npm pack --silent "$PKG@$VERSION" | tail -n1)
tgz="$work/$tgz_name"
[[ -f "$tgz" ]] || die "npm pack produced no tarball (got '$tgz_name')"

got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
if [[ "$got" != "$INTEGRITY" ]]; then
  die "integrity mismatch for $PKG@$VERSION: expected $INTEGRITY, got $got"
fi
log "integrity verified ($INTEGRITY)"

mkdir -p "$work/x"
tar -xzf "$tgz" -C "$work/x"
jar=$(find "$work/x" -type f -name DynamoDBLocal.jar | head -n1)
[[ -n "$jar" ]] || die "DynamoDBLocal.jar not found inside $PKG@$VERSION"
src=$(dirname "$jar")
[[ -d "$src/DynamoDBLocal_lib" ]] || die "DynamoDBLocal_lib not found next to $jar"

# Replace the install atomically-ish: build beside, then swap.
mkdir -p "$REPO/.cache"
stage="$REPO/.cache/.dynamodb-local.new.$$"
rm -rf "$stage"
mkdir -p "$stage"
cp -R "$src/." "$stage/"
echo "$want" >"$stage/.installed"
rm -rf "$DEST"
mv "$stage" "$DEST"

ensure_java
log "installed DynamoDB Local into $DEST"
echo "$DEST/DynamoDBLocal.jar"
