package httpapi

import (
	"testing"
	"time"

	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

// TestNextSyncAtFollowsSyncEvery: nextSyncAt is the daily run's for a 24h
// tenant and the hourly run's for a 1h tenant, unless incremental pulls
// are off for the account, which the view then says.
func TestNextSyncAtFollowsSyncEvery(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 40, 0, 0, time.UTC)
	info, _ := merchantsync.LookupNetwork(merchantsync.NetworkRakuten)
	acct := &merchantsync.Account{AffiliateID: "lMh2Xiq9xN0", Connected: true, ConnectionID: "c1", State: merchantsync.StateConnected}
	daily, hourly := DailyAt{Hour: 3}, HourlyAt{Minute: 30}
	tests := []struct {
		name  string
		every merchantsync.SyncEvery
		off   string
		want  time.Time
	}{
		{"24h", merchantsync.SyncDaily, "", time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)},
		{"1h", merchantsync.SyncHourly, "", time.Date(2026, 12, 5, 11, 30, 0, 0, time.UTC)},
		{"1h, incremental off", merchantsync.SyncHourly, "Rakuten ignored the filter", time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		a := *acct
		a.IncrementalOff = tt.off
		v := buildNetworkView(info, &a, merchantsync.Settings{Enabled: true, SyncEvery: tt.every}, daily, hourly, now)
		if v.NextSyncAt == nil || !v.NextSyncAt.Equal(tt.want) || v.SyncEvery != string(tt.every) || v.IncrementalOff != tt.off {
			t.Errorf("%s: nextSyncAt %v syncEvery %q incrementalOff %q, want %v", tt.name, v.NextSyncAt, v.SyncEvery, v.IncrementalOff, tt.want)
		}
	}
	if got := (HourlyAt{Minute: 30}).Next(time.Date(2026, 12, 5, 10, 30, 0, 0, time.UTC)); !got.Equal(time.Date(2026, 12, 5, 11, 30, 0, 0, time.UTC)) {
		t.Errorf("HourlyAt.Next at the minute itself = %v, want the next hour's", got)
	}
}
