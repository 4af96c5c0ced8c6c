package backoff

import (
	"context"
	"testing"
	"time"
)

func TestJitterBounds(t *testing.T) {
	tests := []struct {
		attempt   int
		base, max time.Duration
		ceiling   time.Duration
	}{
		{0, 100 * time.Millisecond, 5 * time.Second, 100 * time.Millisecond},
		{3, 100 * time.Millisecond, 5 * time.Second, 800 * time.Millisecond},
		{10, 100 * time.Millisecond, 5 * time.Second, 5 * time.Second},
		{200, time.Millisecond, time.Second, time.Second}, // no overflow
	}
	for _, tt := range tests {
		for range 1000 {
			d := Jitter(tt.attempt, tt.base, tt.max)
			if d <= 0 || d > tt.ceiling {
				t.Fatalf("Jitter(%d, %v, %v) = %v, want in (0, %v]", tt.attempt, tt.base, tt.max, d, tt.ceiling)
			}
		}
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("Sleep on a cancelled ctx = %v, want context.Canceled", err)
	}
	if err := Sleep(context.Background(), 0); err != nil {
		t.Fatalf("Sleep(0) = %v", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Sleep(1ms) = %v", err)
	}
}
