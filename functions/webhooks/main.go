// Command webhooks is the merchantsync webhooks API Lambda: a tenant
// registers, lists, tests and deletes its webhook receivers.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/merchantsync/merchantsync/internal/app"
)

func main() {
	cfg := app.MustLoad() // SDK clients are built once, at cold start
	lambda.Start(cfg.WebhooksHandler().Handle)
}
