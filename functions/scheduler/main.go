// Command scheduler is the merchantsync daily scheduler Lambda: EventBridge
// Scheduler invokes it once a day; it enqueues one sync message per due account.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/merchantsync/merchantsync/internal/app"
)

func main() {
	cfg := app.MustLoad() // SDK clients are built once, at cold start
	lambda.Start(cfg.Scheduler().Handle)
}
