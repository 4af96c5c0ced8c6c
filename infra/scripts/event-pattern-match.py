#!/usr/bin/env python3
"""Matches events against EventBridge patterns with moto's matcher (an
implementation of the pattern language independent of ours), for
infra's TestStreamFiltersMatchWhatStreamEventReads: Lambda's event
filtering uses the same language.

stdin:  a JSON array of {"pattern": "<pattern JSON>", "event": {...}}
stdout: one line per case, in order: "true" or "false".
"""
import json
import sys

from moto.events.models import EventPattern

for case in json.load(sys.stdin):
    print("true" if EventPattern.load(case["pattern"]).matches_event(case["event"]) else "false")
