package webhook

import (
	"math/rand/v2"
	"testing"
	"time"
)

// fixedRand always draws the same point of the range: 0 (lowest), n-1
// (highest) or n/2 (the middle, no jitter).
type fixedRand func(n int64) int64

func (f fixedRand) Int64N(n int64) int64 { return f(n) }

var (
	lowest  = fixedRand(func(int64) int64 { return 0 })
	highest = fixedRand(func(n int64) int64 { return n - 1 })
	middle  = fixedRand(func(n int64) int64 { return n / 2 })
)

func TestNextDelaySchedule(t *testing.T) {
	want := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
	if len(want)+1 != Attempts {
		t.Fatalf("Attempts = %d, want %d", Attempts, len(want)+1)
	}
	var total time.Duration
	for i, w := range want {
		d, ok := NextDelay(i+1, 0, middle)
		if !ok || d != w {
			t.Errorf("after attempt %d: %s, %v; want %s", i+1, d, ok, w)
		}
		total += d
	}
	if total != 27*time.Hour+35*time.Minute+5*time.Second {
		t.Errorf("schedule spans %s", total)
	}
	for _, n := range []int{Attempts, Attempts + 1, 0, -1} {
		if d, ok := NextDelay(n, 0, middle); ok || d != 0 {
			t.Errorf("after attempt %d: %s, %v; want no further attempt", n, d, ok)
		}
	}
}

// TestNextDelayBounds: whatever the jitter draws, every delay is within
// ±10% (±1 s at least) of the schedule's, in whole seconds, never above a
// visibility timeout's 12 h, and the attempts span more than 24 hours.
func TestNextDelayBounds(t *testing.T) {
	var shortest, longest time.Duration
	for _, r := range []Rand{lowest, highest, rand.New(rand.NewPCG(1, 2))} {
		var total time.Duration
		for n := 1; n < Attempts; n++ {
			d, ok := NextDelay(n, 0, r)
			base := delays[n-1]
			spread := max(base/10, time.Second)
			if !ok || d < base-spread || d > base+spread || d%time.Second != 0 || d > MaxDelay {
				t.Errorf("after attempt %d: %s (schedule %s)", n, d, base)
			}
			total += d
		}
		if shortest == 0 || total < shortest {
			shortest = total
		}
		longest = max(longest, total)
	}
	if shortest < 24*time.Hour || longest > LongestSpan {
		t.Fatalf("attempts span %s to %s; want at least 24h and at most %s", shortest, longest, LongestSpan)
	}
	t.Logf("the attempts span %s to %s", shortest, longest)
}

// TestNextDelayJitter: a seeded source gives the same delays twice, and
// spreads them (a schedule without jitter would retry every receiver that
// failed together at the same moment).
func TestNextDelayJitter(t *testing.T) {
	a, b := rand.New(rand.NewPCG(7, 8)), rand.New(rand.NewPCG(7, 8))
	seen := map[time.Duration]bool{}
	for range 200 {
		d1, _ := NextDelay(4, 0, a)
		d2, _ := NextDelay(4, 0, b)
		if d1 != d2 {
			t.Fatalf("same seed, different delays: %s and %s", d1, d2)
		}
		seen[d1] = true
	}
	if len(seen) < 50 {
		t.Fatalf("200 draws gave %d distinct delays", len(seen))
	}
	if d, ok := NextDelay(1, 0, nil); !ok || d < 4*time.Second || d > 6*time.Second {
		t.Fatalf("the default source: %s, %v", d, ok)
	}
}

func TestNextDelayRetryAfter(t *testing.T) {
	for _, c := range []struct {
		attempt    int
		retryAfter time.Duration
		want       time.Duration
	}{
		{1, 3 * time.Hour, 3 * time.Hour},                            // longer than the schedule's: the receiver's
		{1, 1500 * time.Millisecond, 5 * time.Second},                // shorter: the schedule's
		{3, 90*time.Minute + 400*time.Millisecond, 90 * time.Minute}, // whole seconds
		{2, 20 * time.Hour, MaxDelay},                                // capped
		{Attempts, time.Hour, 0},                                     // no attempt left
	} {
		d, _ := NextDelay(c.attempt, c.retryAfter, middle)
		if d != c.want {
			t.Errorf("after attempt %d with Retry-After %s: %s, want %s", c.attempt, c.retryAfter, d, c.want)
		}
	}
}
