#!/usr/bin/env bash
# Makes a pinned Python tool available: the machine's own Python where it
# already has the pinned versions, otherwise a virtualenv under .cache with
# a requirements file installed into it. install-cfn-lint.sh and
# install-moto.sh are this with their arguments.
#
# Usage: infra/scripts/install-pinned-python.sh VENV REQUIREMENTS COMMAND PACKAGE... [-- MODULE...]
#   VENV          the virtualenv's name: .cache/VENV
#   REQUIREMENTS  a pip requirements file pinning every package with ==
#                 (it may include another with -r)
#   COMMAND       the program the tool runs (its directory is printed)
#   PACKAGE...    the distributions whose versions must equal their pins
#   MODULE...     modules that must import too (e.g. a tool's extras)
# Prints the bin directory that has COMMAND with those versions.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[[ $# -ge 4 ]] || { sed -n '7,15p' "$0" >&2; exit 2; }
VENV="$REPO/.cache/$1"
REQS=$2
COMMAND=$3
shift 3
[[ $REQS == /* ]] || REQS="$REPO/infra/scripts/$REQS"

log() { echo "install-pinned-python: $(basename "$VENV"): $*" >&2; }

# pinned PYTHON: PYTHON has every PACKAGE at its pinned version and imports
# every MODULE.
pinned() {
  local py=$1
  shift
  "$py" - "$REQS" "$@" <<'PY' 2>/dev/null
import importlib, importlib.metadata as md, os, sys

def pins(path):
    out = {}
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            out.update(pins(os.path.join(os.path.dirname(path), line[3:].strip())))
        elif "==" in line:
            name, version = line.split("==", 1)
            out[name.strip().lower().replace("_", "-")] = version.strip()
    return out

want = pins(sys.argv[1])
args = sys.argv[2:]
packages, modules = (args[: args.index("--")], args[args.index("--") + 1 :]) if "--" in args else (args, [])
for name in packages:
    if md.version(name) != want[name.lower()]:
        sys.exit(1)
for module in modules:
    importlib.import_module(module)
PY
}

if [[ -x "$VENV/bin/$COMMAND" ]] && pinned "$VENV/bin/python3" "$@"; then
  echo "$VENV/bin"
  exit 0
fi
if cmd=$(command -v "$COMMAND"); then
  # The Python beside the command is the one that runs it (a pyenv shim
  # directory has both); else the one on PATH.
  py="$(dirname "$cmd")/python3"
  [[ -x $py ]] || py=python3
  if pinned "$py" "$@"; then
    dirname "$cmd"
    exit 0
  fi
fi

log "installing $(grep -c '==' "$REQS") pinned packages (and those of the files it includes) into $VENV"
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQS"
[[ -x "$VENV/bin/$COMMAND" ]] && pinned "$VENV/bin/python3" "$@" || { log "ERROR: the pinned versions (or $COMMAND) are still missing"; exit 1; }
echo "$VENV/bin"
