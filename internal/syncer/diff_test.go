package syncer

import (
	"fmt"
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

func pulledOf(mid int64, raw string) merchantsync.Partnership {
	return merchantsync.Partnership{RegionNetwork: 1, AdvertiserID: mid, Name: "M", ProgramStatus: "active", Status: merchantsync.NormalizeRakuten(raw)}
}

// apply mimics the store: writes replace stored relationships by key.
func apply(stored []merchantsync.Relationship, writes []merchantsync.Relationship) []merchantsync.Relationship {
	idx := map[relKey]int{}
	for i, r := range stored {
		idx[relKey{r.RegionNetwork, r.AdvertiserID}] = i
	}
	for _, w := range writes {
		if i, ok := idx[relKey{w.RegionNetwork, w.AdvertiserID}]; ok {
			stored[i] = w
		} else {
			idx[relKey{w.RegionNetwork, w.AdvertiserID}] = len(stored)
			stored = append(stored, w)
		}
	}
	return stored
}

func TestDiffPullLifecycle(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC)
	day := 24 * time.Hour

	// Baseline: three merchants, no change events.
	p := diffPull("t", "rakuten", "r1", t0, time.Time{}, nil,
		[]merchantsync.Partnership{pulledOf(1, "active"), pulledOf(2, "pending"), pulledOf(3, "temp-remove")})
	if len(p.Writes) != 3 || len(p.Changes) != 0 || p.Pulled != 3 {
		t.Fatalf("baseline: writes %d changes %d pulled %d", len(p.Writes), len(p.Changes), p.Pulled)
	}
	stored := apply(nil, p.Writes)

	// Same pull again: nothing to write.
	p = diffPull("t", "rakuten", "r2", t0.Add(day), t0, stored,
		[]merchantsync.Partnership{pulledOf(1, "active"), pulledOf(2, "pending"), pulledOf(3, "temp-remove")})
	if len(p.Writes) != 0 || len(p.Changes) != 0 {
		t.Fatalf("unchanged pull: writes %d changes %d", len(p.Writes), len(p.Changes))
	}

	// Merchant 2 approved, merchant 3 vanishes.
	for i := 1; i <= 3; i++ {
		now := t0.Add(time.Duration(1+i) * day)
		p = diffPull("t", "rakuten", fmt.Sprintf("r-miss-%d", i), now, now.Add(-day), stored,
			[]merchantsync.Partnership{pulledOf(1, "active"), pulledOf(2, "active")})
		stored = apply(stored, p.Writes)
		wantChanges := 0
		if i == 1 {
			wantChanges = 1 // 2: pending → joined
		}
		if i == 3 {
			wantChanges = 1 // 3: removed by missing
		}
		if len(p.Changes) != wantChanges {
			t.Fatalf("miss %d: changes %+v", i, p.Changes)
		}
		if p.Counts[merchantsync.StatusRemoved] != 1 || p.Counts[merchantsync.StatusJoined] != 2 {
			t.Fatalf("miss %d: counts %v", i, p.Counts)
		}
	}
	var m3 merchantsync.Relationship
	for _, r := range stored {
		if r.AdvertiserID == 3 {
			m3 = r
		}
	}
	if m3.RawStatus != RawMissing || m3.MissedPulls != 3 || !m3.LastSeenAt.Equal(t0.Add(day)) {
		t.Fatalf("merchant 3 after 3 misses: %+v", m3)
	}
	// A fourth miss writes nothing.
	p = diffPull("t", "rakuten", "r6", t0.Add(6*day), t0.Add(5*day), stored, []merchantsync.Partnership{pulledOf(1, "active"), pulledOf(2, "active")})
	if len(p.Writes) != 0 {
		t.Fatalf("4th miss wrote %d", len(p.Writes))
	}
	// Comes back: one change, missed reset.
	p = diffPull("t", "rakuten", "r7", t0.Add(7*day), t0.Add(6*day), stored,
		[]merchantsync.Partnership{pulledOf(1, "active"), pulledOf(2, "active"), pulledOf(3, "active")})
	if len(p.Writes) != 1 || len(p.Changes) != 1 || p.Writes[0].MissedPulls != 0 || p.Changes[0].RawFrom != RawMissing {
		t.Fatalf("reappear: %+v %+v", p.Writes, p.Changes)
	}

	// Empty pull: suspicious, nothing applied.
	p = diffPull("t", "rakuten", "r8", t0.Add(8*day), t0.Add(7*day), stored, nil)
	if !p.Suspicious || len(p.Writes) != 0 {
		t.Fatalf("empty pull: %+v", p)
	}
}

func TestDiffPullRegionsAreDistinct(t *testing.T) {
	now := time.Now().UTC()
	a, b := pulledOf(7, "active"), pulledOf(7, "pending")
	b.RegionNetwork = 3
	p := diffPull("t", "rakuten", "r", now, time.Time{}, nil, []merchantsync.Partnership{a, b})
	if p.Pulled != 2 || len(p.Writes) != 2 {
		t.Fatalf("same MID in two regions: %+v", p)
	}
}

// TestDiffResumeAfterPartialWrite: a run whose writes failed half way is
// redelivered and diffs again against what did get written. The second diff
// must produce the same change keys (so rewriting them is idempotent), no
// change for what was already applied, and count no miss twice.
func TestDiffResumeAfterPartialWrite(t *testing.T) {
	start := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	var stored []merchantsync.Relationship
	var pull []merchantsync.Partnership
	for i := range 40 {
		st := "active"
		stored = append(stored, merchantsync.Relationship{TenantID: "t", Network: "rakuten", RegionNetwork: 1, AdvertiserID: int64(100 + i),
			Name: "m", Status: merchantsync.StatusJoined, RawStatus: st})
		if i < 30 { // 10 merchants vanish from this pull
			raw := st
			if i < 10 { // 10 change status
				raw = "pending"
			}
			pull = append(pull, merchantsync.Partnership{RegionNetwork: 1, AdvertiserID: int64(100 + i), Name: "m", Status: merchantsync.NormalizeRakuten(raw)})
		}
	}
	first := diffPull("t", "rakuten", "run-1", start, start.Add(-24*time.Hour), stored, pull)
	if len(first.Changes) != 10 || first.Missed != 10 {
		t.Fatalf("first diff: %d changes, %d missed; want 10, 10", len(first.Changes), first.Missed)
	}
	// The attempt wrote every change (they go first) but only every other
	// relationship (status changes and misses alike) before failing.
	applied := map[relKey]merchantsync.Relationship{}
	for i, w := range first.Writes {
		if i%2 == 1 {
			applied[relKey{w.RegionNetwork, w.AdvertiserID}] = w
		}
	}
	resumed := make([]merchantsync.Relationship, len(stored))
	for i, r := range stored {
		if w, ok := applied[relKey{r.RegionNetwork, r.AdvertiserID}]; ok {
			r = w
		}
		resumed[i] = r
	}
	second := diffPull("t", "rakuten", "run-1", start, start.Add(-24*time.Hour), resumed, pull)
	changeKey := func(c merchantsync.Change) string {
		return fmt.Sprintf("%s|%d|%d|%s", c.At.Format(time.RFC3339Nano), c.RegionNetwork, c.AdvertiserID, c.To)
	}
	firstKeys := map[string]bool{}
	for _, c := range first.Changes {
		firstKeys[changeKey(c)] = true
	}
	for _, c := range second.Changes {
		if !firstKeys[changeKey(c)] {
			t.Errorf("resumed run made a change the first attempt did not: %+v", c)
		}
	}
	final := map[relKey]merchantsync.Relationship{}
	for _, r := range resumed {
		final[relKey{r.RegionNetwork, r.AdvertiserID}] = r
	}
	for _, w := range second.Writes {
		final[relKey{w.RegionNetwork, w.AdvertiserID}] = w
	}
	for k, r := range final {
		if k.mid >= 130 && r.MissedPulls != 1 {
			t.Errorf("merchant %d: MissedPulls = %d after a resumed run, want 1", k.mid, r.MissedPulls)
		}
	}
}
