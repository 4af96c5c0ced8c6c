#!/usr/bin/env bash
# Makes the pinned cfn-lint and SAM translator available to `make test`
# (cfn-lint on template.yaml; the infra tests translate the template with
# the translator). Where python3 already has both at the pinned versions it
# does nothing; otherwise it installs infra/scripts/cfn-lint-requirements.txt
# into the virtualenv .cache/cfn-lint, which test.sh and the tests prefer.
#
# Usage: infra/scripts/install-cfn-lint.sh   (prints the bin directory to use)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REQS="$REPO/infra/scripts/cfn-lint-requirements.txt"
VENV="$REPO/.cache/cfn-lint"

log() { echo "install-cfn-lint: $*" >&2; }

# pinned PYTHON: PYTHON imports cfn-lint and the translator at the versions
# of the requirements file, and its bin directory has the cfn-lint command.
pinned() {
  "$1" - "$REQS" <<'PY' 2>/dev/null
import importlib.metadata as md, os, sys
want = dict(l.strip().split("==") for l in open(sys.argv[1]) if "==" in l and not l.startswith("#"))
for name in ("cfn-lint", "aws-sam-translator"):
    if md.version(name) != want[name]:
        sys.exit(1)
PY
}

if [[ -x "$VENV/bin/python3" ]] && pinned "$VENV/bin/python3"; then
  echo "$VENV/bin"
  exit 0
fi
if command -v python3 >/dev/null && command -v cfn-lint >/dev/null && pinned python3; then
  dirname "$(command -v cfn-lint)"
  exit 0
fi

log "installing $(grep -c '==' "$REQS") pinned packages into $VENV"
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS"
pinned "$VENV/bin/python3" || { log "ERROR: the pinned versions are still missing"; exit 1; }
echo "$VENV/bin"
