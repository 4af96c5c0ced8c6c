// Command credentials is the merchantsync credentials API (connect/disconnect Rakuten; the only writer of secrets) Lambda.
package main

import (
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/merchantsync/merchantsync/internal/app"
)

func main() {
	cfg := app.MustLoad() // SDK clients are built once, at cold start
	lambda.Start(cfg.CredentialsHandler().Handle)
}
