// Command api is the merchantsync REST API (networks, IDs, settings, runs, relationships, changes) Lambda.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/merchantsync/merchantsync/internal/app"
)

func main() {
	cfg := app.MustLoad() // SDK clients are built once, at cold start
	lambda.Start(cfg.APIHandler().Handle)
}
