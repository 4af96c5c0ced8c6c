// Command sync is the merchantsync sync worker Lambda: the SQS event source
// delivers sync requests; each syncs one tenant × network with Rakuten.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/merchantsync/merchantsync/internal/app"
)

func main() {
	cfg := app.MustLoad() // SDK clients are built once, at cold start
	lambda.Start(cfg.SyncWorker().Handle)
}
