// Command receiver is a webhook receiver for trying merchantsync's webhooks
// on the local stack: it listens on 127.0.0.1, verifies every request's
// Standard Webhooks signature with the secret the API gave when the
// webhook was registered, and prints one JSON line per request.
//
//	go run ./infra/dev/receiver -addr 127.0.0.1:9000 -secret whsec_… [-fail 3]
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/merchantsync/merchantsync/internal/devstack"
	"github.com/merchantsync/merchantsync/internal/webhook"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "where to listen")
	secretFlag := flag.String("secret", os.Getenv("WEBHOOK_SECRET"), "the webhook's whsec_ secret (or $WEBHOOK_SECRET)")
	fail := flag.Int("fail", 0, "answer 500 to the first N requests of each webhook-id")
	flag.Parse()
	secret, err := webhook.SecretFromString(*secretFlag)
	if err != nil {
		fmt.Fprintln(os.Stderr, "receiver: -secret:", err)
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "receiver: listening on http://%s (failing the first %d attempts of each event)\n", *addr, *fail)
	srv := &http.Server{Addr: *addr, Handler: &devstack.Receiver{Secret: secret, Fail: *fail, Out: os.Stdout}, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		os.Exit(1)
	}
}
