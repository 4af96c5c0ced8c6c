package syncer

import (
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

func pulledOf(mid int64, raw string) pulled {
	return pulled{Region: 1, AdvertiserID: mid, Name: "M", ProgramStatus: "active", Norm: merchantsync.NormalizeRakuten(raw)}
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
		[]pulled{pulledOf(1, "active"), pulledOf(2, "pending"), pulledOf(3, "temp-remove")})
	if len(p.Writes) != 3 || len(p.Changes) != 0 || p.Pulled != 3 {
		t.Fatalf("baseline: writes %d changes %d pulled %d", len(p.Writes), len(p.Changes), p.Pulled)
	}
	stored := apply(nil, p.Writes)

	// Same pull again: nothing to write.
	p = diffPull("t", "rakuten", "r2", t0.Add(day), t0, stored,
		[]pulled{pulledOf(1, "active"), pulledOf(2, "pending"), pulledOf(3, "temp-remove")})
	if len(p.Writes) != 0 || len(p.Changes) != 0 {
		t.Fatalf("unchanged pull: writes %d changes %d", len(p.Writes), len(p.Changes))
	}

	// Merchant 2 approved, merchant 3 vanishes.
	for i := 1; i <= 3; i++ {
		now := t0.Add(time.Duration(1+i) * day)
		p = diffPull("t", "rakuten", "r", now, now.Add(-day), stored,
			[]pulled{pulledOf(1, "active"), pulledOf(2, "active")})
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
	p = diffPull("t", "rakuten", "r", t0.Add(6*day), t0.Add(5*day), stored, []pulled{pulledOf(1, "active"), pulledOf(2, "active")})
	if len(p.Writes) != 0 {
		t.Fatalf("4th miss wrote %d", len(p.Writes))
	}
	// Comes back: one change, missed reset.
	p = diffPull("t", "rakuten", "r", t0.Add(7*day), t0.Add(6*day), stored,
		[]pulled{pulledOf(1, "active"), pulledOf(2, "active"), pulledOf(3, "active")})
	if len(p.Writes) != 1 || len(p.Changes) != 1 || p.Writes[0].MissedPulls != 0 || p.Changes[0].RawFrom != RawMissing {
		t.Fatalf("reappear: %+v %+v", p.Writes, p.Changes)
	}

	// Empty pull: suspicious, nothing applied.
	p = diffPull("t", "rakuten", "r", t0.Add(8*day), t0.Add(7*day), stored, nil)
	if !p.Suspicious || len(p.Writes) != 0 {
		t.Fatalf("empty pull: %+v", p)
	}
}

func TestDiffPullRegionsAreDistinct(t *testing.T) {
	now := time.Now().UTC()
	a, b := pulledOf(7, "active"), pulledOf(7, "pending")
	b.Region = 3
	p := diffPull("t", "rakuten", "r", now, time.Time{}, nil, []pulled{a, b})
	if p.Pulled != 2 || len(p.Writes) != 2 {
		t.Fatalf("same MID in two regions: %+v", p)
	}
}
