package devstack

import (
	"context"
	"os"
	"time"
)

// UntilOrphaned returns a context that is cancelled when this process's
// parent exits. `make dev` execs the dev binary, so make is its parent:
// when make is killed on its own (no signal reaches its children), the
// stack still shuts down and stops DynamoDB Local instead of lingering.
func UntilOrphaned(ctx context.Context) (context.Context, context.CancelFunc) {
	return untilParentChanges(ctx, os.Getppid, time.Second)
}

func untilParentChanges(ctx context.Context, getppid func() int, every time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	parent := getppid()
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if getppid() != parent {
					cancel()
					return
				}
			}
		}
	}()
	return ctx, cancel
}
