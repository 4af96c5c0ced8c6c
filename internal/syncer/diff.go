package syncer

import (
	"sort"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// RawMissing is the raw status merchantsync records when a merchant is called
// removed because it was missing from MissesBeforeRemoved consecutive
// successful pulls (Rakuten itself said nothing). It keeps the normalized
// status honest (removed) while telling people and programs that this was
// inferred, not reported; when the merchant comes back the change reads
// rawFrom "missing" → rawTo "active".
const RawMissing = "missing"

// relKey identifies a relationship within one account: Rakuten accounts can
// hold partnerships in several regional networks.
type relKey struct {
	region int
	mid    int64
}

// plan is what one successful pull changes.
type plan struct {
	Writes  []merchantsync.Relationship // only relationships that changed
	Changes []merchantsync.Change       // one per status (or raw status) transition
	Counts  map[merchantsync.Status]int // over every relationship after applying
	Pulled  int                         // distinct merchants in the pull

	Added, Updated, Missed, RemovedByMissing, Reappeared int
	// Suspicious is set when the pull was empty although stored relationships
	// were not all missing already: nothing is applied from it.
	Suspicious bool
}

// removedByMissing reports whether r was called removed because it stopped
// appearing in pulls (as opposed to Rakuten reporting a removal).
func removedByMissing(r *merchantsync.Relationship) bool {
	return r.MissedPulls >= merchantsync.MissesBeforeRemoved
}

// diffPull compares one successful pull against the stored relationships and
// returns the writes and change events that bring the store up to date.
//
//   - new merchant: written (FirstSeenAt = now, StatusChangedAt = Rakuten's
//     status_update_datetime or now), no change event (the first pull of an
//     account is a baseline, and a merchant first seen later has no "from").
//   - status or raw status changed: written, one Change.
//   - name, program status or permanent flag changed, or seen again after
//     missed pulls: written, no change event.
//   - unchanged: not written (LastSeenAt is not refreshed daily; readers take
//     the account's LastSyncAt as lastSeenAt while MissedPulls == 0).
//   - missing: MissedPulls+1 (LastSeenAt = lastSyncAt, the last pull that had
//     it, on the first miss); on the MissesBeforeRemoved-th miss the status
//     becomes removed with raw status RawMissing and one Change. Merchants
//     already removed by missing are left alone.
//   - unverified (missing, but the network could not say it is gone: its
//     lookups are bounded): left as it is, not a miss.
//   - an empty pull while some stored relationship is not yet missing is
//     suspicious: plan.Suspicious, no writes at all.
func diffPull(tenantID, network, runID string, now, lastSyncAt time.Time,
	stored []merchantsync.Relationship, pull []merchantsync.Partnership, unverified ...merchantsync.MerchantKey) plan {

	p := plan{Counts: make(map[merchantsync.Status]int)}
	seen := make(map[relKey]*merchantsync.Partnership, len(pull))
	for i := range pull {
		seen[relKey{pull[i].RegionNetwork, pull[i].AdvertiserID}] = &pull[i] // a repeated merchant: last one wins
	}
	p.Pulled = len(seen)

	if len(seen) == 0 {
		for i := range stored {
			if !removedByMissing(&stored[i]) {
				p.Suspicious = true
				break
			}
		}
		if p.Suspicious {
			for i := range stored {
				p.Counts[stored[i].Status]++
			}
			return p
		}
	}

	unsure := make(map[relKey]bool, len(unverified))
	for _, k := range unverified {
		unsure[relKey{k.RegionNetwork, k.AdvertiserID}] = true
	}
	storedKeys := make(map[relKey]struct{}, len(stored))
	for i := range stored {
		old := stored[i]
		k := relKey{old.RegionNetwork, old.AdvertiserID}
		storedKeys[k] = struct{}{}
		in, ok := seen[k]
		if !ok {
			if removedByMissing(&old) || old.MissRunID == runID || unsure[k] {
				// Already removed, or this run (resumed after a partial
				// write) counted the miss before, or not known to be gone:
				// nothing to write.
				p.Counts[old.Status]++
				continue
			}
			nr := old
			nr.MissedPulls++
			nr.MissRunID = runID
			if old.MissedPulls == 0 && !lastSyncAt.IsZero() {
				nr.LastSeenAt = lastSyncAt
			}
			p.Missed++
			if nr.MissedPulls >= merchantsync.MissesBeforeRemoved {
				nr.Status = merchantsync.StatusRemoved
				nr.RawStatus = RawMissing
				nr.Permanent = false
				nr.StatusChangedAt = now
				p.RemovedByMissing++
				p.Changes = append(p.Changes, change(tenantID, network, runID, now, &old, &nr))
			}
			p.Writes = append(p.Writes, nr)
			p.Counts[nr.Status]++
			continue
		}

		nr := old
		nr.TenantID, nr.Network = tenantID, network
		nr.Name = in.Name
		nr.ProgramStatus = in.ProgramStatus
		nr.Status = in.Status.Status
		nr.RawStatus = in.Status.Raw
		nr.Permanent = in.Status.Permanent
		nr.MissedPulls, nr.MissRunID = 0, ""
		statusChanged := nr.Status != old.Status || nr.RawStatus != old.RawStatus
		if statusChanged {
			nr.StatusChangedAt = now
			p.Changes = append(p.Changes, change(tenantID, network, runID, now, &old, &nr))
		}
		if old.MissedPulls > 0 {
			p.Reappeared++
		}
		if statusChanged || old.MissedPulls > 0 || nr.Name != old.Name ||
			nr.ProgramStatus != old.ProgramStatus || nr.Permanent != old.Permanent {
			nr.LastSeenAt = now // written anyway: keep it exact
			p.Writes = append(p.Writes, nr)
			p.Updated++
		}
		p.Counts[nr.Status]++
	}

	// New merchants, in a stable order (tests and logs read better).
	var added []merchantsync.Relationship
	for k, in := range seen {
		if _, ok := storedKeys[k]; ok {
			continue
		}
		changedAt := in.StatusUpdatedAt.UTC()
		if changedAt.IsZero() {
			changedAt = now
		}
		added = append(added, merchantsync.Relationship{
			TenantID:        tenantID,
			Network:         network,
			RegionNetwork:   in.RegionNetwork,
			AdvertiserID:    in.AdvertiserID,
			Name:            in.Name,
			Status:          in.Status.Status,
			RawStatus:       in.Status.Raw,
			Permanent:       in.Status.Permanent,
			ProgramStatus:   in.ProgramStatus,
			StatusChangedAt: changedAt,
			FirstSeenAt:     now,
			LastSeenAt:      now,
		})
		p.Counts[in.Status.Status]++
	}
	sort.Slice(added, func(i, j int) bool {
		if added[i].RegionNetwork != added[j].RegionNetwork {
			return added[i].RegionNetwork < added[j].RegionNetwork
		}
		return added[i].AdvertiserID < added[j].AdvertiserID
	})
	p.Added = len(added)
	p.Writes = append(p.Writes, added...)
	return p
}

func change(tenantID, network, runID string, now time.Time, old, nr *merchantsync.Relationship) merchantsync.Change {
	return merchantsync.Change{
		TenantID:      tenantID,
		Network:       network,
		RegionNetwork: nr.RegionNetwork,
		AdvertiserID:  nr.AdvertiserID,
		Name:          nr.Name,
		From:          old.Status,
		To:            nr.Status,
		RawFrom:       old.RawStatus,
		RawTo:         nr.RawStatus,
		Permanent:     nr.Permanent,
		At:            now,
		RunID:         runID,
	}
}
