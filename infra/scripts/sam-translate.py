#!/usr/bin/env python3
"""Translates SAM templates into the CloudFormation that AWS deploys.

The infra tests check the roles, schedules and functions SAM generates, not
the SAM shorthand, so they run this with the SAM translator that cfn-lint
uses (aws-sam-translator, pinned in cfn-lint-requirements.txt).

stdin: {"translate": [{"path": FILE} or {"template": {...}}, "parameters": {...}], ...],
        "iamServices": ["dynamodb", ...]}
stdout: {"templates": [translated template, ...],
         "iamActions": {service: [every action IAM knows, lower case]}}
The IAM actions come from cfn-lint's copy of the Service Authorization
Reference, so a test can tell a granted action that does not exist.
"""

import json
import os
import sys

# The translator picks the partition from the region.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.parser.parser import Parser  # noqa: E402
from samtranslator.translator.translator import Translator  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402


def translate(item):
    if "path" in item:
        with open(item["path"], encoding="utf-8") as f:
            template = yaml_parse(f.read())
    else:
        template = item["template"]
    # sam deploy uploads each function's build and puts its S3 location in
    # CodeUri; the translator refuses a local path.
    for res in template.get("Resources", {}).values():
        if res.get("Type") == "AWS::Serverless::Function":
            res.setdefault("Properties", {})["CodeUri"] = "s3://bucket/key"
    translator = Translator(managed_policy_map={}, sam_parser=Parser())
    return translator.translate(sam_template=template, parameter_values=item.get("parameters", {}))


def iam_actions(services):
    from cfnlint.data import AdditionalSpecs
    from cfnlint.helpers import load_resource

    spec = load_resource(AdditionalSpecs, "Policies.json")
    return {s: sorted(spec.get(s, {}).get("Actions", {})) for s in services}


def main():
    req = json.load(sys.stdin)
    out = {
        "templates": [translate(item) for item in req.get("translate") or []],
        "iamActions": iam_actions(req.get("iamServices") or []),
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
