// Package backoff is the retry timing every client of merchantsync shares:
// exponential backoff with full jitter, and a sleep that ends with its
// context (so a Lambda's deadline always wins over a retry).
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Jitter returns a delay for retry attempt (0-based) drawn uniformly from
// (0, min(max, base·2^attempt)]: "full jitter", which spreads retries of
// many clients hit by the same fault.
func Jitter(attempt int, base, max time.Duration) time.Duration {
	d := max
	if attempt < 30 {
		if e := base << attempt; e > 0 && e < max {
			d = e
		}
	}
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d))) + 1
}

// Sleep waits d, or returns ctx's error as soon as ctx ends. A d ≤ 0 does
// not wait but still reports an ended ctx.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
