package webhook

import (
	"math/rand/v2"
	"time"
)

// Attempts is how many times one message is tried: at once, then after
// each delay of the schedule below. The delivery queue's maxReceiveCount
// must equal it, so that SQS moves the message to the dead-letter queue
// after the last attempt.
const Attempts = 8

// MaxDelay is the longest wait between two attempts: the most
// ChangeMessageVisibility accepts (12 hours).
const MaxDelay = 12 * time.Hour

// LongestSpan bounds the time from the first attempt to the last, even when
// receivers' Retry-After stretches every wait to MaxDelay. The delivery
// queue must keep messages longer than this.
const LongestSpan = (Attempts - 1) * MaxDelay

// delays are the waits after attempts 1 to 7: the Standard Webhooks
// specification's example schedule up to 10 hours, then 10 hours once more
// instead of its 14 (more than one visibility timeout can hold). About 27.5
// hours in all, at least 24.8 with jitter.
var delays = [Attempts - 1]time.Duration{
	5 * time.Second,
	5 * time.Minute,
	30 * time.Minute,
	2 * time.Hour,
	5 * time.Hour,
	10 * time.Hour,
	10 * time.Hour,
}

// Rand is the random source of the jitter: *math/rand/v2.Rand, or a fixed
// one in tests.
type Rand interface{ Int64N(n int64) int64 }

type globalRand struct{}

func (globalRand) Int64N(n int64) int64 { return rand.Int64N(n) }

// NextDelay returns how long to wait after failed attempt number attempt
// (1-based: SQS's ApproximateReceiveCount of the message) before the next
// one, in whole seconds as a visibility timeout takes them, and false when
// that was the last attempt (the message goes to the dead-letter queue).
//
// The delay is the schedule's, spread uniformly over ±10% (at least ±1 s)
// so that receivers that failed together are not retried together, and
// never shorter than the receiver's retryAfter (0 for none); it never
// exceeds MaxDelay. r nil means math/rand/v2's generator.
func NextDelay(attempt int, retryAfter time.Duration, r Rand) (time.Duration, bool) {
	if attempt < 1 || attempt >= Attempts {
		return 0, false
	}
	if r == nil {
		r = globalRand{}
	}
	base := int64(delays[attempt-1] / time.Second)
	spread := max(base/10, 1)
	secs := base - spread + r.Int64N(2*spread+1)
	d := max(time.Duration(secs)*time.Second, retryAfter.Round(time.Second))
	return min(d, MaxDelay), true
}
