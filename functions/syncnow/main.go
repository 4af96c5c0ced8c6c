// Command syncnow is the merchantsync Sync now API (queues a manual sync) Lambda.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/merchantsync/merchantsync/internal/app"
)

func main() {
	cfg := app.MustLoad() // SDK clients are built once, at cold start
	lambda.Start(cfg.SyncNowHandler().Handle)
}
