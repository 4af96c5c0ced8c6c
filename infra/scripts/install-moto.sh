#!/usr/bin/env bash
# Makes the pinned moto server (moto[server]==5.2.1, the AWS emulator of the
# tests and the local stack) available. Where the machine's Python already
# has moto 5.2.1 and imports its server and the services merchantsync uses
# (whose imports need the server extras: flask, flask-cors, …), it does
# nothing; otherwise it installs infra/scripts/moto-requirements.txt (every
# dependency pinned) into the virtualenv .cache/moto, which moto.sh and
# internal/testenv prefer.
#
# Usage: infra/scripts/install-moto.sh   (prints the bin directory of moto_server)
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/install-pinned-python.sh" moto moto-requirements.txt \
  moto_server moto -- moto.server moto.sqs.models moto.secretsmanager.models moto.events.models moto.kms.models
