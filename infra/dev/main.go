// Command dev runs merchantsync locally (`make dev`): the API on LISTEN_ADDR
// (default 127.0.0.1:8080) over DynamoDB Local, moto (SQS, Secrets Manager)
// and the Rakuten sandbox, with the same handlers as in Lambda.
// DEV_DYNAMODB_PORT and DEV_MOTO_PORT move the emulators it starts (default
// 8776 and 8777), to run two stacks side by side.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/merchantsync/merchantsync/internal/devstack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	ctx, cancel := devstack.UntilOrphaned(ctx)
	defer cancel()
	root, _ := os.Getwd()
	dynamoPort, _ := strconv.Atoi(os.Getenv("DEV_DYNAMODB_PORT"))
	motoPort, _ := strconv.Atoi(os.Getenv("DEV_MOTO_PORT"))
	err := devstack.Run(ctx, devstack.Options{
		ListenAddr: os.Getenv("LISTEN_ADDR"), RepoRoot: root, Log: os.Stderr, Out: os.Stdout,
		DynamoPort: dynamoPort, MotoPort: motoPort,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}
