#!/usr/bin/env node
// Verifies webhook signatures with svix's Webhook.verify, an implementation
// of the Standard Webhooks verification independent of ours, for
// internal/webhook's TestSignaturesVerifyWithSvix.
//
// stdin:  a JSON array of cases
//         {"secret": "whsec_…", "id": "…", "timestamp": "<unix seconds>",
//          "signature": "v1,… [v1,…]", "body_base64": "…"}
// stdout: "svix <version>", then one line per case, in order: "verified",
//         "failed <svix's reason>" (svix refused the signature), or
//         "error <message>" (anything else went wrong).
// Exits 3 when svix is not installed (infra/scripts/install-svix.sh).
'use strict';
const path = require('node:path');

const modules = path.join(__dirname, '..', '..', '.cache', 'npm-tools', 'node_modules');
let svix, version;
try {
  svix = require(path.join(modules, 'svix'));
  version = require(path.join(modules, 'svix', 'package.json')).version;
} catch (e) {
  console.error('svix-verify: svix is not installed: run infra/scripts/install-svix.sh (make deps does)');
  process.exit(3);
}

const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const cases = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const out = [`svix ${version}`];
  for (const c of cases) {
    try {
      // The raw bytes, as a receiver should pass them (never re-encoded JSON).
      const body = Buffer.from(c.body_base64, 'base64');
      new svix.Webhook(c.secret).verify(body, {
        'webhook-id': c.id,
        'webhook-timestamp': c.timestamp,
        'webhook-signature': c.signature,
      });
      out.push('verified');
    } catch (e) {
      const kind = e instanceof svix.WebhookVerificationError ? 'failed' : 'error';
      out.push(`${kind} ${String((e && e.message) || e).replace(/\s+/g, ' ')}`);
    }
  }
  process.stdout.write(out.join('\n') + '\n');
});
