package devstack

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestUntilParentChanges(t *testing.T) {
	var ppid atomic.Int64
	ppid.Store(4242)
	ctx, cancel := untilParentChanges(context.Background(), func() int { return int(ppid.Load()) }, time.Millisecond)
	defer cancel()
	select {
	case <-ctx.Done():
		t.Fatal("cancelled while the parent is alive")
	case <-time.After(20 * time.Millisecond):
	}
	ppid.Store(1) // reparented: the parent exited
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("not cancelled after the parent changed")
	}
}
