package syncer

import (
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// TestScheduleIdentity: without a run id the scheduled time names the run,
// so every attempt of one scheduled run is the same run, and two scheduled
// times (even on one day) are two runs.
func TestScheduleIdentity(t *testing.T) {
	s := &Scheduler{Now: func() time.Time { return time.Date(2026, 11, 27, 3, 0, 5, 0, time.UTC) }}
	id := func(ev ScheduleEvent) string {
		t.Helper()
		id, _, err := s.scheduleIdentity(ev, merchantsync.ModeFull)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	first := id(ScheduleEvent{ScheduledTime: "2026-11-27T03:00:00Z"})
	if again := id(ScheduleEvent{ScheduledTime: "2026-11-27T03:00:00Z"}); again != first {
		t.Fatalf("two attempts of one run: %q and %q", first, again)
	}
	if later := id(ScheduleEvent{ScheduledTime: "2026-11-27T15:00:00Z"}); later == first {
		t.Fatalf("two scheduled times of one day share the run id %q", first)
	}
	if first != "schedule-2026-11-27T03:00:00Z" {
		t.Fatalf("run id %q, want it named by the scheduled time", first)
	}
	if byHand := id(ScheduleEvent{RunID: "rerun-1", ScheduledTime: "2026-11-27T03:00:00Z"}); byHand != "rerun-1" {
		t.Fatalf("a run id given by hand became %q", byHand)
	}
}
