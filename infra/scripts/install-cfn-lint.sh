#!/usr/bin/env bash
# Makes the pinned cfn-lint and SAM translator available to `make test`
# (cfn-lint on template.yaml; the infra tests translate the template with
# the translator). Where python3 already has both at the pinned versions it
# does nothing; otherwise it installs infra/scripts/cfn-lint-requirements.txt
# into the virtualenv .cache/cfn-lint, which test.sh and the tests prefer.
#
# Usage: infra/scripts/install-cfn-lint.sh   (prints the bin directory to use)
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/install-pinned-python.sh" cfn-lint cfn-lint-requirements.txt \
  cfn-lint cfn-lint aws-sam-translator
