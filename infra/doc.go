// Package infra holds the deployment's checks: the tests in this folder
// parse template.yaml and hold it to merchantsync's invariants. The folder
// also has the local stack (dev/), Lambda test events (events/) and scripts.
package infra
