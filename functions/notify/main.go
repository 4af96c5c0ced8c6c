// Command notify is the merchantsync notifier Lambda: the table's stream
// (changes, finished runs, refused connections) becomes events on the
// EventBridge bus and deliveries on the webhook deliveries queue.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/merchantsync/merchantsync/internal/app"
)

func main() {
	cfg := app.MustLoad() // SDK clients are built once, at cold start
	lambda.Start(cfg.Notifier().Handle)
}
