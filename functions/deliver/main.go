// Command deliver is the merchantsync webhook delivery Lambda: one SQS
// message = one signed attempt to one receiver; retries ride on the queue.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/merchantsync/merchantsync/internal/app"
)

func main() {
	cfg := app.MustLoad() // SDK clients are built once, at cold start
	lambda.Start(cfg.Deliverer().Handle)
}
