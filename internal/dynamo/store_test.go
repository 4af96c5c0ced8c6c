package dynamo_test

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/merchantsync/merchantsync/internal/dynamo"
	"github.com/merchantsync/merchantsync/internal/merchantsync"
)

func TestCreateTableSchema(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	d, err := e.c.DescribeTable(c, &dynamodb.DescribeTableInput{TableName: aws.String(e.table)})
	must(t, err)
	tab := d.Table
	keys := func(ks []types.KeySchemaElement) string {
		var s []string
		for _, k := range ks {
			s = append(s, *k.AttributeName+":"+string(k.KeyType))
		}
		return fmt.Sprint(s)
	}
	if got := keys(tab.KeySchema); got != "[PK:HASH SK:RANGE]" {
		t.Errorf("key schema = %s", got)
	}
	gsis := map[string]string{}
	for _, g := range tab.GlobalSecondaryIndexes {
		gsis[*g.IndexName] = keys(g.KeySchema) + " " + string(g.Projection.ProjectionType)
	}
	want := map[string]string{
		dynamo.IndexDue:    "[duePK:HASH dueSK:RANGE] KEYS_ONLY",
		dynamo.IndexStatus: "[relStatus:HASH SK:RANGE] ALL",
	}
	if !maps.Equal(gsis, want) {
		t.Errorf("GSIs = %v, want %v", gsis, want)
	}
	if tab.BillingModeSummary == nil || tab.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
		t.Errorf("billing mode = %+v, want PAY_PER_REQUEST", tab.BillingModeSummary)
	}
	ttl, err := e.c.DescribeTimeToLive(c, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(e.table)})
	must(t, err)
	if ttl.TimeToLiveDescription == nil || aws.ToString(ttl.TimeToLiveDescription.AttributeName) != dynamo.AttrTTL ||
		ttl.TimeToLiveDescription.TimeToLiveStatus != types.TimeToLiveStatusEnabled {
		t.Errorf("TTL = %+v, want %s enabled", ttl.TimeToLiveDescription, dynamo.AttrTTL)
	}
}

func TestSettings(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	st, err := e.s.GetSettings(c, "t1")
	must(t, err)
	if !st.Enabled || st.TenantID != "t1" {
		t.Fatalf("never saved settings = %+v, want enabled", st)
	}
	for _, enabled := range []bool{false, true, false} {
		must(t, e.s.PutSettings(c, merchantsync.Settings{TenantID: "t1", Enabled: enabled, UpdatedAt: t0}))
		st, err := e.s.GetSettings(c, "t1")
		must(t, err)
		if st.Enabled != enabled || !st.UpdatedAt.Equal(t0) {
			t.Fatalf("after put %v: %+v", enabled, st)
		}
	}
	other, err := e.s.GetSettings(c, "t2")
	must(t, err)
	if !other.Enabled {
		t.Fatal("t1's settings leaked into t2")
	}
	_, err = e.s.GetSettings(c, "")
	wantCode(t, err, merchantsync.EInvalid)
}

func TestSaveIDsUpsert(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	steps := []struct {
		name      string
		do        func() error
		aff, site string
		connected bool
		state     merchantsync.ConnectionState
		username  string
	}{
		{"create", func() error { _, err := e.s.SaveIDs(c, "a", rk, "AAAAAAAAAAA", "111", t0); return err }, "AAAAAAAAAAA", "111", false, merchantsync.StateIDsSaved, ""},
		{"update affiliate, empty site keeps it", func() error { _, err := e.s.SaveIDs(c, "a", rk, "BBBBBBBBBBB", "", t0); return err }, "BBBBBBBBBBB", "111", false, merchantsync.StateIDsSaved, ""},
		{"connect", func() error { return connect(c, e.s, "a", conn, "222", "me") }, "BBBBBBBBBBB", "222", true, merchantsync.StateConnected, "me"},
		{"save IDs keeps connection", func() error { _, err := e.s.SaveIDs(c, "a", rk, "CCCCCCCCCCC", "333", t0); return err }, "CCCCCCCCCCC", "333", true, merchantsync.StateConnected, "me"},
		{"disconnect keeps IDs", func() error { return e.s.MarkDisconnected(c, "a", rk, conn, t0) }, "CCCCCCCCCCC", "333", false, merchantsync.StateIDsSaved, ""},
	}
	for _, st := range steps {
		must(t, st.do())
		a, err := e.s.GetAccount(c, "a", rk)
		must(t, err)
		if a == nil || a.AffiliateID != st.aff || a.SiteID != st.site || a.Connected != st.connected || a.State != st.state || a.Username != st.username {
			t.Fatalf("%s: account = %+v", st.name, a)
		}
	}
	// Deleting an account whose connection is not the one named is refused.
	must(t, connect(c, e.s, "a", conn, "", ""))
	wantCode(t, e.s.DeleteAccount(c, "a", rk, "20250302T000000.000Z-00000000c2"), merchantsync.EConnectionChanged)
	wantCode(t, e.s.MarkDisconnected(c, "a", rk, "20250302T000000.000Z-00000000c2", t0), merchantsync.EConnectionChanged)
	must(t, e.s.DeleteAccount(c, "a", rk, conn))
	a, err := e.s.GetAccount(c, "a", rk)
	must(t, err)
	if a != nil {
		t.Fatalf("deleted account still there: %+v", a)
	}
	_, err = e.s.SaveIDs(c, "a", rk, "", "1", t0)
	wantCode(t, err, merchantsync.EInvalid)
	_, err = e.s.SaveIDs(c, "a", "rakuten#x", "AAAAAAAAAAA", "1", t0)
	wantCode(t, err, merchantsync.EInvalid)
}

// TestTenantIsolation: tenant B sees nothing of A's and B's writes never
// change A's items.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	fa := fenced(t, e.s, "A")
	_, err := e.s.WriteRelationships(c, fa, []merchantsync.Relationship{rel("A", 1, 10, merchantsync.StatusJoined), rel("A", 1, 11, merchantsync.StatusPending)},
		[]merchantsync.Change{{TenantID: "A", Network: rk, RegionNetwork: 1, AdvertiserID: 10, To: merchantsync.StatusJoined, At: t0, RunID: "r1"}})
	must(t, err)
	must(t, e.s.FinishRun(c, run("A", "01A", merchantsync.RunSucceeded), merchantsync.RunOutcome{ConnectionID: conn, State: merchantsync.StateConnected, Succeeded: true}))
	_, aCursor, err := e.s.ListRelationships(c, "A", rk, "", 1, "")
	must(t, err)
	before := e.snapshot(t, "A")

	// Reads as B see nothing of A's.
	reads := []struct {
		name string
		n    func() (int, error)
	}{
		{"GetAccount", func() (int, error) {
			a, err := e.s.GetAccount(c, "B", rk)
			if a != nil {
				return 1, err
			}
			return 0, err
		}},
		{"AllRelationships", func() (int, error) { r, err := e.s.AllRelationships(c, "B", rk); return len(r), err }},
		{"ListRelationships", func() (int, error) { r, _, err := e.s.ListRelationships(c, "B", rk, "", 0, ""); return len(r), err }},
		{"ListRelationships with A's cursor", func() (int, error) {
			r, _, err := e.s.ListRelationships(c, "B", rk, "", 0, aCursor)
			return len(r), err
		}},
		{"ListRuns", func() (int, error) { r, _, err := e.s.ListRuns(c, "B", rk, 0, ""); return len(r), err }},
		{"GetRun", func() (int, error) {
			r, err := e.s.GetRun(c, "B", rk, "01A")
			if r != nil {
				return 1, err
			}
			return 0, err
		}},
		{"ListChanges", func() (int, error) { r, _, err := e.s.ListChanges(c, "B", rk, time.Time{}, 0, ""); return len(r), err }},
		{"GetSettings", func() (int, error) {
			st, err := e.s.GetSettings(c, "B")
			if st.TenantID != "B" {
				return 1, err
			}
			return 0, err
		}},
	}
	for _, r := range reads {
		n, err := r.n()
		must(t, err)
		if n != 0 {
			t.Errorf("%s as B returned %d of A's items", r.name, n)
		}
	}

	// Every write as B, including ones naming A's run ids, leaves A's items alone.
	writes := []func() error{
		func() error { _, err := e.s.SaveIDs(c, "B", rk, "BBBBBBBBBBB", "999", t0); return err },
		func() error { return connect(c, e.s, "B", conn, "", "b") },
		func() error { return e.s.PutSettings(c, merchantsync.Settings{TenantID: "B", Enabled: false}) },
		func() error { _, err := e.s.AcquireLease(c, "B", rk, conn, "01A", t0, t0.Add(time.Minute)); return err },
		func() error {
			fb := merchantsync.Fence{TenantID: "B", Network: rk, ConnectionID: conn, LeaseHolder: "01A"}
			_, err := e.s.WriteRelationships(c, fb, []merchantsync.Relationship{rel("B", 1, 10, merchantsync.StatusRemoved)}, nil)
			return err
		},
		func() error { return e.s.ReleaseLease(c, "B", rk, "01A") },
		func() error { return e.s.PutRun(c, run("B", "01A", merchantsync.RunFailed)) },
		func() error {
			return e.s.FinishRun(c, run("B", "01A", merchantsync.RunFailed), merchantsync.RunOutcome{ConnectionID: conn, State: merchantsync.StateReauthRequired})
		},
		func() error { return e.s.MarkDisconnected(c, "B", rk, conn, t0) },
		func() error { return e.s.DeleteAccount(c, "B", rk, "") },
	}
	for i, w := range writes {
		must(t, w())
		if after := e.snapshot(t, "A"); !reflect.DeepEqual(before, after) {
			t.Fatalf("write %d as B changed A's items:\nbefore %v\nafter  %v", i, before, after)
		}
	}
	// A write naming two tenants is refused.
	fb := fenced(t, e.s, "B")
	_, err = e.s.WriteRelationships(c, fb, []merchantsync.Relationship{rel("B", 1, 1, merchantsync.StatusJoined), rel("A", 1, 1, merchantsync.StatusJoined)}, nil)
	wantCode(t, err, merchantsync.EInvalid)
	if after := e.snapshot(t, "A"); !reflect.DeepEqual(before, after) {
		t.Fatal("a mixed-tenant write changed A's items")
	}
}

func TestMarkConnectedWithoutIDs(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	err := connect(c, e.s, "t", conn, "123", "me")
	wantCode(t, err, merchantsync.ENetworkIDRequired)
	if items := e.scan(t); len(items) != 0 {
		t.Fatalf("a refused connect stored %d items", len(items))
	}
	// Deleting the IDs means a later connect is refused too.
	_, err = e.s.SaveIDs(c, "t", rk, "AAAAAAAAAAA", "", t0)
	must(t, err)
	must(t, e.s.DeleteAccount(c, "t", rk, ""))
	wantCode(t, connect(c, e.s, "t", conn, "123", "me"), merchantsync.ENetworkIDRequired)
}

func TestDueKeys(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	settings := func(tenant string, on bool) func() error {
		return func() error { return e.s.PutSettings(c, merchantsync.Settings{TenantID: tenant, Enabled: on}) }
	}
	finish := func(tenant string, state merchantsync.ConnectionState) func() error {
		return func() error {
			return e.s.FinishRun(c, run(tenant, "r-"+string(state), merchantsync.RunFailed), merchantsync.RunOutcome{ConnectionID: conn, State: state})
		}
	}
	steps := []struct {
		name string
		do   func() error
		want []string
	}{
		{"ids only", func() error { _, err := e.s.SaveIDs(c, "t1", rk, "AAAAAAAAAAA", "", t0); return err }, nil},
		{"connect", func() error { return connect(c, e.s, "t1", conn, "", "") }, []string{"t1/rakuten"}},
		{"second tenant", func() error { connected(t, e.s, "t2"); return nil }, []string{"t1/rakuten", "t2/rakuten"}},
		{"toggle off", settings("t1", false), []string{"t2/rakuten"}},
		{"toggle on", settings("t1", true), []string{"t1/rakuten", "t2/rakuten"}},
		{"failed run (error) stays due", finish("t1", merchantsync.StateError), []string{"t1/rakuten", "t2/rakuten"}},
		{"reauth_required", finish("t1", merchantsync.StateReauthRequired), []string{"t2/rakuten"}},
		{"toggle keeps reauth out", func() error {
			if err := settings("t1", false)(); err != nil {
				return err
			}
			return settings("t1", true)()
		}, []string{"t2/rakuten"}},
		{"reconnect", func() error { return connect(c, e.s, "t1", conn, "", "") }, []string{"t1/rakuten", "t2/rakuten"}},
		{"disconnect", func() error { return e.s.MarkDisconnected(c, "t2", rk, conn, t0) }, []string{"t1/rakuten"}},
		{"connect while disabled", func() error {
			if err := settings("t2", false)(); err != nil {
				return err
			}
			return connect(c, e.s, "t2", conn, "", "")
		}, []string{"t1/rakuten"}},
		{"enable", settings("t2", true), []string{"t1/rakuten", "t2/rakuten"}},
		{"delete account", func() error { return e.s.DeleteAccount(c, "t1", rk, conn) }, []string{"t2/rakuten"}},
		{"settings of a tenant without account", settings("t3", true), []string{"t2/rakuten"}},
	}
	for _, st := range steps {
		must(t, st.do())
		if got := e.due(t); !slices.Equal(got, st.want) {
			t.Fatalf("%s: due = %v, want %v", st.name, got, st.want)
		}
	}
	_, err := e.s.QueryDue(c, dynamo.Shards, func([]merchantsync.AccountKey) error { return nil })
	wantCode(t, err, merchantsync.EInvalid)
}

// TestQueryDueSharding: 1,000 due accounts spread over the shards and every
// page is followed.
func TestQueryDueSharding(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			tenant := fmt.Sprintf("tenant-%04d", i)
			if _, err := e.s.SaveIDs(c, tenant, rk, "AAAAAAAAAAA", "", t0); err != nil {
				errs <- err
				return
			}
			if i%10 == 9 { // every tenth only has IDs: not due
				return
			}
			errs <- connect(c, e.s, tenant, conn, "", "")
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	e.s.DuePageSize = 10
	seen := map[string]bool{}
	perShard := make([]int, dynamo.Shards)
	totalPages := 0
	for shard := range dynamo.Shards {
		pages, err := e.s.QueryDue(c, shard, func(page []merchantsync.AccountKey) error {
			if len(page) > 10 {
				t.Errorf("page of %d > page size 10", len(page))
			}
			for _, d := range page {
				if seen[d.TenantID] {
					t.Errorf("%s returned twice", d.TenantID)
				}
				seen[d.TenantID] = true
				perShard[shard]++
				if dynamo.ShardOf(d.TenantID) != shard || d.Network != rk {
					t.Errorf("%+v in shard %d", d, shard)
				}
			}
			return nil
		})
		must(t, err)
		totalPages += pages
	}
	if len(seen) != 900 {
		t.Fatalf("due accounts = %d, want 900", len(seen))
	}
	for i := range n {
		tenant := fmt.Sprintf("tenant-%04d", i)
		if seen[tenant] != (i%10 != 9) {
			t.Errorf("%s due = %v", tenant, seen[tenant])
		}
	}
	mean := 900 / dynamo.Shards
	for shard, k := range perShard {
		if k < mean/2 || k > mean*2 {
			t.Errorf("shard %d holds %d accounts, mean %d: not spread", shard, k, mean)
		}
	}
	if totalPages < 900/10 {
		t.Errorf("pages = %d: paging not followed", totalPages)
	}
	t.Logf("per shard %v, %d pages", perShard, totalPages)
}

func TestLease(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	connected(t, e.s, "t")
	min := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	steps := []struct {
		name   string
		do     func() (bool, error)
		want   bool
		holder string
	}{
		{"free lease", func() (bool, error) { return e.s.AcquireLease(c, "t", rk, conn, "r1", min(0), min(15)) }, true, "r1"},
		{"contended", func() (bool, error) { return e.s.AcquireLease(c, "t", rk, conn, "r2", min(1), min(16)) }, false, "r1"},
		{"holder extends", func() (bool, error) { return e.s.AcquireLease(c, "t", rk, conn, "r1", min(2), min(17)) }, true, "r1"},
		{"still contended before expiry", func() (bool, error) { return e.s.AcquireLease(c, "t", rk, conn, "r2", min(16), min(31)) }, false, "r1"},
		{"expired lease is taken", func() (bool, error) { return e.s.AcquireLease(c, "t", rk, conn, "r2", min(17), min(32)) }, true, "r2"},
		{"release by a non-holder does nothing", func() (bool, error) { return true, e.s.ReleaseLease(c, "t", rk, "r1") }, true, "r2"},
		{"release by the holder", func() (bool, error) { return true, e.s.ReleaseLease(c, "t", rk, "r2") }, true, ""},
		{"free again", func() (bool, error) { return e.s.AcquireLease(c, "t", rk, conn, "r3", min(18), min(33)) }, true, "r3"},
	}
	for _, st := range steps {
		ok, err := st.do()
		must(t, err)
		if ok != st.want {
			t.Fatalf("%s: ok = %v, want %v", st.name, ok, st.want)
		}
		a, err := e.s.GetAccount(c, "t", rk)
		must(t, err)
		if a.LeaseRunID != st.holder {
			t.Fatalf("%s: holder = %q, want %q", st.name, a.LeaseRunID, st.holder)
		}
	}
	_, err := e.s.AcquireLease(c, "nobody", rk, conn, "r1", t0, min(15))
	wantCode(t, err, merchantsync.ENotFound)
	if a, _ := e.s.GetAccount(c, "nobody", rk); a != nil {
		t.Fatal("AcquireLease created an account")
	}

	// Concurrent contenders: exactly one wins.
	must(t, e.s.ReleaseLease(c, "t", rk, "r3"))
	var wins sync.WaitGroup
	var mu sync.Mutex
	winners := 0
	for i := range 8 {
		wins.Add(1)
		go func() {
			defer wins.Done()
			ok, err := e.s.AcquireLease(c, "t", rk, conn, fmt.Sprintf("c%d", i), min(40), min(55))
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				winners++
				mu.Unlock()
			}
		}()
	}
	wins.Wait()
	if winners != 1 {
		t.Fatalf("%d concurrent winners, want 1", winners)
	}
}

func TestStartManualRun(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	t.Run("refusals", func(t *testing.T) {
		_, err := e.s.SaveIDs(c, "ids", rk, "AAAAAAAAAAA", "", t0)
		must(t, err)
		connected(t, e.s, "reauth")
		must(t, e.s.FinishRun(c, run("reauth", "x", merchantsync.RunFailed), merchantsync.RunOutcome{ConnectionID: conn, State: merchantsync.StateReauthRequired}))
		connected(t, e.s, "off")
		must(t, e.s.PutSettings(c, merchantsync.Settings{TenantID: "off", Enabled: false}))
		for _, tc := range []struct{ tenant, code string }{
			{"none", merchantsync.ENotConnected},
			{"ids", merchantsync.ENotConnected},
			{"reauth", merchantsync.EReauthRequired},
			{"off", merchantsync.ESyncDisabled},
		} {
			_, _, err := e.s.StartManualRun(c, run(tc.tenant, "m1", ""), t0)
			wantCode(t, err, tc.code)
			if r, _ := e.s.GetRun(c, tc.tenant, rk, "m1"); r != nil {
				t.Errorf("%s: refused run stored", tc.tenant)
			}
		}
	})
	t.Run("join", func(t *testing.T) {
		connected(t, e.s, "j")
		r1, isNew, err := e.s.StartManualRun(c, run("j", "01", ""), t0)
		must(t, err)
		if !isNew || r1.RunID != "01" || r1.State != merchantsync.RunQueued {
			t.Fatalf("first = %+v new=%v", r1, isNew)
		}
		r2, isNew, err := e.s.StartManualRun(c, run("j", "02", ""), t0.Add(time.Minute))
		must(t, err)
		if isNew || r2.RunID != "01" {
			t.Fatalf("second should join 01: %+v new=%v", r2, isNew)
		}
		// Running still joins; finished does not.
		running := r1
		running.State, running.StartedAt = merchantsync.RunRunning, t0.Add(time.Minute)
		must(t, e.s.PutRun(c, running))
		if r, isNew, _ := e.s.StartManualRun(c, run("j", "03", ""), t0.Add(2*time.Minute)); isNew || r.RunID != "01" {
			t.Fatalf("running run not joined: %+v", r)
		}
		done := running
		done.State, done.FinishedAt = merchantsync.RunSucceeded, t0.Add(3*time.Minute)
		must(t, e.s.FinishRun(c, done, merchantsync.RunOutcome{ConnectionID: conn, State: merchantsync.StateConnected, Succeeded: true}))
		r4, isNew, err := e.s.StartManualRun(c, run("j", "04", ""), t0.Add(4*time.Minute))
		must(t, err)
		if !isNew || r4.RunID != "04" {
			t.Fatalf("after finish: %+v new=%v", r4, isNew)
		}
		// A run that never finished goes stale and is not joined forever.
		r5, isNew, err := e.s.StartManualRun(c, run("j", "05", ""), t0.Add(4*time.Minute+dynamo.StaleRunAfter+time.Second))
		must(t, err)
		if !isNew || r5.RunID != "05" {
			t.Fatalf("stale run joined: %+v new=%v", r5, isNew)
		}
		_, _, err = e.s.StartManualRun(c, run("j", "05", ""), t0)
		if r, _ := e.s.GetRun(c, "j", rk, "05"); r == nil || err != nil && merchantsync.ErrorCode(err) != merchantsync.EConflict {
			t.Fatalf("restart of an existing run id: %v", err)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		connected(t, e.s, "cc")
		const n = 8
		var wg sync.WaitGroup
		ids := make([]string, n)
		news := make([]bool, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, isNew, err := e.s.StartManualRun(c, run("cc", fmt.Sprintf("c%02d", i), ""), t0)
				if err != nil {
					t.Error(err)
					return
				}
				ids[i], news[i] = r.RunID, isNew
			}()
		}
		wg.Wait()
		created := 0
		for i := range n {
			if news[i] {
				created++
			}
			if ids[i] != ids[0] {
				t.Errorf("caller %d got run %s, caller 0 got %s", i, ids[i], ids[0])
			}
		}
		runs, _, err := e.s.ListRuns(c, "cc", rk, 0, "")
		must(t, err)
		if created != 1 || len(runs) != 1 {
			t.Fatalf("%d callers created a run, %d runs stored; want exactly 1", created, len(runs))
		}
		a, err := e.s.GetAccount(c, "cc", rk)
		must(t, err)
		if a.ActiveRunID != runs[0].RunID {
			t.Fatalf("active run %q, stored %q", a.ActiveRunID, runs[0].RunID)
		}
	})
}

func TestFinishRun(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	connected(t, e.s, "t")
	queued, _, err := e.s.StartManualRun(c, run("t", "01", ""), t0)
	must(t, err)
	ok, err := e.s.AcquireLease(c, "t", rk, conn, "01", t0, t0.Add(15*time.Minute))
	must(t, err)
	if !ok {
		t.Fatal("lease not acquired")
	}
	done := queued
	done.State, done.StartedAt, done.FinishedAt = merchantsync.RunSucceeded, t0, t0.Add(time.Minute)
	done.MerchantsSynced, done.Changes, done.APICalls = 3, 1, 2
	done.Counts = map[merchantsync.Status]int{merchantsync.StatusJoined: 2, merchantsync.StatusPending: 1}
	must(t, e.s.FinishRun(c, done, merchantsync.RunOutcome{ConnectionID: conn, State: merchantsync.StateConnected, Succeeded: true, ScheduleRunID: "sched-1"}))
	a, err := e.s.GetAccount(c, "t", rk)
	must(t, err)
	checks := []struct {
		name string
		ok   bool
	}{
		{"last run", a.LastRun != nil && a.LastRun.RunID == "01" && a.LastRun.MerchantsSynced == 3 && a.LastRun.State == merchantsync.RunSucceeded},
		{"counts", reflect.DeepEqual(a.Counts, done.Counts)},
		{"last sync", a.LastSyncAt.Equal(done.FinishedAt)},
		{"state", a.State == merchantsync.StateConnected},
		{"scheduled run id", a.LastScheduledRunID == "sched-1"},
		{"active run cleared", a.ActiveRunID == ""},
		{"lease released", a.LeaseRunID == "" && a.LeaseUntil.IsZero()},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s: account = %+v", ch.name, a)
		}
	}
	got, err := e.s.GetRun(c, "t", rk, "01")
	must(t, err)
	if got == nil || !reflect.DeepEqual(*got, done) {
		t.Errorf("stored run = %+v\nwant %+v", got, done)
	}

	// A failed run keeps counts and last sync; it does not clear another run's lease.
	ok, err = e.s.AcquireLease(c, "t", rk, conn, "other", t0, t0.Add(time.Hour))
	must(t, err)
	failed := run("t", "02", merchantsync.RunFailed)
	failed.Error = &merchantsync.RunError{Code: "network_unavailable", Message: "Rakuten is down"}
	must(t, e.s.FinishRun(c, failed, merchantsync.RunOutcome{ConnectionID: conn, State: merchantsync.StateError}))
	a, err = e.s.GetAccount(c, "t", rk)
	must(t, err)
	if a.State != merchantsync.StateError || !reflect.DeepEqual(a.Counts, done.Counts) || !a.LastSyncAt.Equal(done.FinishedAt) ||
		a.LeaseRunID != "other" || a.LastRun.Error == nil || a.LastRun.Error.Code != "network_unavailable" {
		t.Errorf("after failed run: %+v", a)
	}

	// Overtaken by a reconnect, a disconnect or a deletion: nothing is
	// written (the engine records such a run itself), nothing is resurrected.
	overtake := []struct {
		name string
		do   func() error
	}{
		{"reconnected", func() error { return connect(c, e.s, "t", "20250302T000000.000Z-00000000c2", "", "") }},
		{"disconnected", func() error { return e.s.MarkDisconnected(c, "t", rk, "20250302T000000.000Z-00000000c2", t0) }},
		{"deleted", func() error { return e.s.DeleteAccount(c, "t", rk, "") }},
	}
	for i, o := range overtake {
		must(t, o.do())
		before := e.snapshot(t, "t")
		id := fmt.Sprintf("%02d", i+3)
		err := e.s.FinishRun(c, run("t", id, merchantsync.RunSucceeded), merchantsync.RunOutcome{ConnectionID: conn, State: merchantsync.StateConnected, Succeeded: true})
		wantCode(t, err, merchantsync.EConnectionChanged)
		if after := e.snapshot(t, "t"); !reflect.DeepEqual(before, after) {
			t.Errorf("%s: a run of the old connection changed the table:\nbefore %v\nafter  %v", o.name, before, after)
		}
	}
	if a, _ := e.s.GetAccount(c, "t", rk); a != nil {
		t.Fatalf("FinishRun resurrected a deleted account: %+v", a)
	}
	runs, _, err := e.s.ListRuns(c, "t", rk, 0, "")
	must(t, err)
	var ids []string
	for _, r := range runs {
		ids = append(ids, r.RunID)
	}
	if !slices.Equal(ids, []string{"02", "01"}) {
		t.Fatalf("runs newest first = %v", ids)
	}
}

func TestListRunsPaging(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	for i := range 7 {
		must(t, e.s.CreateRun(c, run("t", fmt.Sprintf("%03d", i), merchantsync.RunQueued)))
	}
	wantCode(t, e.s.CreateRun(c, run("t", "003", merchantsync.RunQueued)), merchantsync.EConflict)
	var got []string
	cursor := ""
	for pages := 1; ; pages++ {
		runs, next, err := e.s.ListRuns(c, "t", rk, 3, cursor)
		must(t, err)
		for _, r := range runs {
			got = append(got, r.RunID)
		}
		if next == "" {
			if pages != 3 {
				t.Errorf("pages = %d, want 3", pages)
			}
			break
		}
		cursor = next
	}
	if !slices.Equal(got, []string{"006", "005", "004", "003", "002", "001", "000"}) {
		t.Fatalf("runs = %v", got)
	}
	// Run records expire after 90 days.
	for _, item := range e.scan(t) {
		ttl, ok := item[dynamo.AttrTTL].(*types.AttributeValueMemberN)
		if !ok || ttl.Value != fmt.Sprint(t0.Add(dynamo.RunTTL).Unix()) {
			t.Fatalf("run TTL = %v", item[dynamo.AttrTTL])
		}
	}
}

func TestListRelationships(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	statuses := []merchantsync.Status{merchantsync.StatusJoined, merchantsync.StatusPending, merchantsync.StatusDeclined, merchantsync.StatusRemoved, merchantsync.StatusJoined}
	var rels []merchantsync.Relationship
	for i := range 130 {
		region := 1 + i%2*2 // regions 1 and 3
		rels = append(rels, rel("t", region, int64(1000-i*7), statuses[i%len(statuses)]))
	}
	_, err := e.s.WriteRelationships(c, fenced(t, e.s, "t"), rels, nil)
	must(t, err)
	sorted := slices.Clone(rels)
	sort.Slice(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		return a.RegionNetwork < b.RegionNetwork || a.RegionNetwork == b.RegionNetwork && a.AdvertiserID < b.AdvertiserID
	})
	key := func(r merchantsync.Relationship) string { return fmt.Sprintf("%d/%d", r.RegionNetwork, r.AdvertiserID) }
	cases := []struct {
		status merchantsync.Status
		limit  int
		pages  []int
	}{
		{"", 0, []int{50, 50, 30}},
		{"", 65, []int{65, 65}},
		{"", 200, []int{130}},
		{merchantsync.StatusJoined, 10, []int{10, 10, 10, 10, 10, 2}},
		{merchantsync.StatusPending, 26, []int{26}},
		{merchantsync.StatusLeft, 10, []int{0}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%d", tc.status, tc.limit), func(t *testing.T) {
			var want []string
			for _, r := range sorted {
				if tc.status == "" || r.Status == tc.status {
					want = append(want, key(r))
				}
			}
			var got []string
			var sizes []int
			cursor := ""
			for {
				page, next, err := e.s.ListRelationships(c, "t", rk, tc.status, tc.limit, cursor)
				must(t, err)
				sizes = append(sizes, len(page))
				for _, r := range page {
					got = append(got, key(r))
				}
				if next == "" {
					break
				}
				cursor = next
				if len(sizes) > 50 {
					t.Fatal("paging does not end")
				}
			}
			if !slices.Equal(sizes, tc.pages) || !slices.Equal(got, want) {
				t.Fatalf("pages %v (want %v)\ngot  %v\nwant %v", sizes, tc.pages, got, want)
			}
		})
	}
	all, err := e.s.AllRelationships(c, "t", rk)
	must(t, err)
	if len(all) != 130 || !reflect.DeepEqual(all[0], sorted[0]) {
		t.Fatalf("AllRelationships: %d, first %+v want %+v", len(all), all[0], sorted[0])
	}
	for _, bad := range []struct {
		status merchantsync.Status
		limit  int
		field  string
	}{{"", 201, "limit"}, {"", -1, "limit"}, {"nope", 10, "status"}} {
		_, _, err := e.s.ListRelationships(c, "t", rk, bad.status, bad.limit, "")
		wantCode(t, err, merchantsync.EInvalid)
		if f := merchantsync.ErrorField(err); f != bad.field {
			t.Errorf("field = %q, want %q", f, bad.field)
		}
	}
}

// A status filter reads the status index: one Query for a page, however
// few relationships have that status, and a relationship whose status
// changes moves from one listing to the other.
func TestListRelationshipsByStatusReadsOnlyMatches(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	var rels []merchantsync.Relationship
	for i := range 600 {
		st := merchantsync.StatusJoined
		if i%100 == 50 {
			st = merchantsync.StatusDeclined
		}
		rels = append(rels, rel("t", 1, int64(i+1), st))
	}
	f := fenced(t, e.s, "t")
	_, err := e.s.WriteRelationships(c, f, rels, nil)
	must(t, err)
	e.counter.Reset()
	page, next, err := e.s.ListRelationships(c, "t", rk, merchantsync.StatusDeclined, 100, "")
	must(t, err)
	if len(page) != 6 || next != "" || page[0].AdvertiserID != 51 || page[5].AdvertiserID != 551 {
		t.Fatalf("declined page: %d items, next %q: %+v", len(page), next, page)
	}
	if n := e.counter.Op("Query"); n != 1 {
		t.Fatalf("a page of 6 declined among 600 took %d Query calls, want 1", n)
	}

	moved := rels[0] // joined → declined
	moved.Status = merchantsync.StatusDeclined
	_, err = e.s.WriteRelationships(c, f, []merchantsync.Relationship{moved}, nil)
	must(t, err)
	page, _, err = e.s.ListRelationships(c, "t", rk, merchantsync.StatusDeclined, 100, "")
	must(t, err)
	joined, _, err := e.s.ListRelationships(c, "t", rk, merchantsync.StatusJoined, 1, "")
	must(t, err)
	if len(page) != 7 || page[0].AdvertiserID != 1 || len(joined) != 1 || joined[0].AdvertiserID != 2 {
		t.Fatalf("after 1 joined → declined: declined %d (first %d), first joined %+v", len(page), page[0].AdvertiserID, joined)
	}
}

func TestForgedCursor(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	_, err := e.s.WriteRelationships(c, fenced(t, e.s, "t"), []merchantsync.Relationship{rel("t", 1, 1, merchantsync.StatusJoined), rel("t", 1, 2, merchantsync.StatusJoined)}, nil)
	must(t, err)
	must(t, e.s.CreateRun(c, run("t", "01", merchantsync.RunQueued)))
	must(t, e.s.CreateRun(c, run("t", "02", merchantsync.RunQueued)))
	_, relCursor, err := e.s.ListRelationships(c, "t", rk, "", 1, "")
	must(t, err)
	_, runCursor, err := e.s.ListRuns(c, "t", rk, 1, "")
	must(t, err)
	if relCursor == "" || runCursor == "" {
		t.Fatal("no cursors")
	}
	b64 := func(s string) string { return base64URL(s) }
	cursors := []struct{ name, cursor string }{
		{"garbage", "!!!not-base64!!!"},
		{"not json", b64("hello")},
		{"empty sk", b64(`{"k":""}`)},
		{"settings item", b64(`{"k":"SETTINGS"}`)},
		{"account item", b64(`{"k":"NETWORK#rakuten"}`)},
		{"run cursor on relationships", runCursor},
		{"prefix only", b64(`{"k":"REL#rakuten#"}`)},
		{"other network", b64(`{"k":"REL#other#00001#0000000000000000001"}`)},
		{"too long", b64(`{"k":"REL#rakuten#` + string(make([]byte, 3000)) + `"}`)},
	}
	for _, tc := range cursors {
		_, _, err := e.s.ListRelationships(c, "t", rk, "", 10, tc.cursor)
		wantCode(t, err, merchantsync.EInvalid)
		if merchantsync.ErrorField(err) != "cursor" {
			t.Errorf("%s: field %q", tc.name, merchantsync.ErrorField(err))
		}
	}
	_, _, err = e.s.ListRuns(c, "t", rk, 10, relCursor)
	wantCode(t, err, merchantsync.EInvalid)
	_, _, err = e.s.ListChanges(c, "t", rk, time.Time{}, 10, relCursor)
	wantCode(t, err, merchantsync.EInvalid)
	// Extra fields cannot name another partition: the PK is always the caller's.
	_, err = e.s.WriteRelationships(c, fenced(t, e.s, "other"), []merchantsync.Relationship{rel("other", 1, 5, merchantsync.StatusJoined)}, nil)
	must(t, err)
	smuggled := b64(`{"k":"REL#rakuten#00001#0000000000000000001","PK":"TENANT#other","pk":"TENANT#other"}`)
	page, _, err := e.s.ListRelationships(c, "t", rk, "", 10, smuggled)
	must(t, err)
	if len(page) != 1 || page[0].TenantID != "t" || page[0].AdvertiserID != 2 {
		t.Fatalf("smuggled cursor read %+v", page)
	}
	// A valid cursor still works.
	page, _, err = e.s.ListRelationships(c, "t", rk, "", 10, relCursor)
	must(t, err)
	if len(page) != 1 || page[0].AdvertiserID != 2 {
		t.Fatalf("page after cursor = %+v", page)
	}
}

func TestListChanges(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	var changes []merchantsync.Change
	// Times with and without fractions: key order must still be time order.
	offsets := []time.Duration{0, 500 * time.Millisecond, time.Second, time.Second + time.Nanosecond, time.Hour, 24 * time.Hour}
	for i, off := range offsets {
		changes = append(changes, merchantsync.Change{
			TenantID: "t", Network: rk, RegionNetwork: 1, AdvertiserID: int64(100 + i), Name: "m",
			From: merchantsync.StatusJoined, To: merchantsync.StatusRemoved, RawFrom: "Active", RawTo: "Temp Removed",
			At: t0.Add(off), RunID: "r",
		})
	}
	_, err := e.s.WriteRelationships(c, fenced(t, e.s, "t"), nil, changes)
	must(t, err)
	ids := func(cs []merchantsync.Change) []int64 {
		var out []int64
		for _, ch := range cs {
			out = append(out, ch.AdvertiserID)
		}
		return out
	}
	cases := []struct {
		name  string
		since time.Time
		limit int
		want  []int64
	}{
		{"all, newest first", time.Time{}, 0, []int64{105, 104, 103, 102, 101, 100}},
		{"since excludes at == since", t0.Add(time.Second), 0, []int64{105, 104, 103}},
		{"since between", t0.Add(time.Millisecond), 0, []int64{105, 104, 103, 102, 101}},
		{"since after all", t0.Add(48 * time.Hour), 0, nil},
		{"paged", time.Time{}, 4, []int64{105, 104, 103, 102, 101, 100}},
		{"paged with since", t0, 2, []int64{105, 104, 103, 102, 101}},
	}
	for _, tc := range cases {
		var got []merchantsync.Change
		cursor := ""
		for i := 0; ; i++ {
			page, next, err := e.s.ListChanges(c, "t", rk, tc.since, tc.limit, cursor)
			must(t, err)
			got = append(got, page...)
			if next == "" || i > 10 {
				break
			}
			cursor = next
		}
		if !slices.Equal(ids(got), tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, ids(got), tc.want)
		}
	}
	all, _, err := e.s.ListChanges(c, "t", rk, time.Time{}, 0, "")
	must(t, err)
	if !reflect.DeepEqual(all[len(all)-1], changes[0]) {
		t.Errorf("stored change = %+v\nwant %+v", all[len(all)-1], changes[0])
	}
	for _, item := range e.scan(t) {
		if k, _ := item["kind"].(*types.AttributeValueMemberS); k == nil || k.Value != "change" {
			continue
		}
		if ttl, ok := item[dynamo.AttrTTL].(*types.AttributeValueMemberN); !ok || ttl.Value < fmt.Sprint(t0.Add(dynamo.ChangeTTL).Unix()) {
			t.Fatalf("change TTL = %v, want ≥ at + 1 year", item[dynamo.AttrTTL])
		}
	}
	// A cursor from before since is refused, not an error of DynamoDB's.
	_, early, err := e.s.ListChanges(c, "t", rk, time.Time{}, 5, "")
	must(t, err)
	_, _, err = e.s.ListChanges(c, "t", rk, t0.Add(time.Hour), 5, early)
	wantCode(t, err, merchantsync.EInvalid)
}

// TestNoSecretsStored drives every write and scans every stored attribute
// name, nested ones included.
func TestNoSecretsStored(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	connected(t, e.s, "t")
	must(t, e.s.PutSettings(c, merchantsync.Settings{TenantID: "t", Enabled: true}))
	r, _, err := e.s.StartManualRun(c, run("t", "01", ""), t0)
	must(t, err)
	_, err = e.s.AcquireLease(c, "t", rk, conn, "01", t0, t0.Add(time.Minute))
	must(t, err)
	f := merchantsync.Fence{TenantID: "t", Network: rk, ConnectionID: conn, LeaseHolder: "01"}
	_, err = e.s.WriteRelationships(c, f, []merchantsync.Relationship{rel("t", 1, 1, merchantsync.StatusJoined)},
		[]merchantsync.Change{{TenantID: "t", Network: rk, RegionNetwork: 1, AdvertiserID: 1, To: merchantsync.StatusJoined, At: t0}})
	must(t, err)
	r.State = merchantsync.RunFailed
	r.Error = &merchantsync.RunError{Code: "network_auth_failed", Message: "refused"}
	must(t, e.s.FinishRun(c, r, merchantsync.RunOutcome{ConnectionID: conn, State: merchantsync.StateReauthRequired}))
	items := e.scan(t)
	if len(items) < 5 {
		t.Fatalf("only %d items", len(items))
	}
	forbidden := []string{"secret", "password", "passwd", "token", "refresh", "credential", "apikey", "clientid"}
	var walk func(path string, av types.AttributeValue)
	names := 0
	walk = func(path string, av types.AttributeValue) {
		if m, ok := av.(*types.AttributeValueMemberM); ok {
			for k, v := range m.Value {
				names++
				lk := toLower(k)
				for _, f := range forbidden {
					if contains(lk, f) {
						t.Errorf("attribute %s.%s looks like a secret", path, k)
					}
				}
				walk(path+"."+k, v)
			}
		}
	}
	for _, item := range items {
		walk(fmt.Sprint(item["SK"]), &types.AttributeValueMemberM{Value: item})
	}
	if names < 40 {
		t.Fatalf("walked only %d attribute names", names)
	}
}

// TestConnectionGenerations: every connect starts a new connection that
// fences out the old one's lease and active run; a lease asked for under
// an old connection is refused with EConnectionChanged.
func TestConnectionGenerations(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	const c2 = "20250302T000000.000Z-00000000c2"
	_, err := e.s.SaveIDs(c, "t", rk, "lMh2Xiq9xN0", "", t0)
	must(t, err)
	prev, err := e.s.MarkConnected(c, "t", rk, merchantsync.Connection{ID: conn, SiteID: "1234567", Username: "me"}, t0)
	must(t, err)
	if prev != "" {
		t.Fatalf("first connect replaced %q", prev)
	}
	_, _, err = e.s.StartManualRun(c, run("t", "01", ""), t0)
	must(t, err)
	ok, err := e.s.AcquireLease(c, "t", rk, conn, "01~x", t0, t0.Add(time.Hour))
	must(t, err)
	if !ok {
		t.Fatal("lease not taken")
	}
	prev, err = e.s.MarkConnected(c, "t", rk, merchantsync.Connection{ID: c2, SiteID: "7654321"}, t0.Add(time.Minute))
	must(t, err)
	a, err := e.s.GetAccount(c, "t", rk)
	must(t, err)
	if prev != conn || a.ConnectionID != c2 || a.LeaseRunID != "" || a.ActiveRunID != "" || a.SiteID != "7654321" || a.Username != "" {
		t.Fatalf("reconnect replaced %q; account %+v", prev, a)
	}
	// The old connection's run can take the lease no more; the new one can.
	_, err = e.s.AcquireLease(c, "t", rk, conn, "01~x", t0, t0.Add(time.Hour))
	wantCode(t, err, merchantsync.EConnectionChanged)
	ok, err = e.s.AcquireLease(c, "t", rk, c2, "02~y", t0, t0.Add(time.Hour))
	must(t, err)
	if !ok {
		t.Fatal("the new connection's run could not take the lease")
	}
	// A manual sync after the reconnect starts a run of its own.
	r, isNew, err := e.s.StartManualRun(c, run("t", "03", ""), t0.Add(time.Minute))
	must(t, err)
	if !isNew || r.RunID != "03" {
		t.Fatalf("manual sync after reconnect joined %+v", r)
	}
	// Disconnecting the new connection works; naming the old one is refused.
	wantCode(t, e.s.MarkDisconnected(c, "t", rk, conn, t0), merchantsync.EConnectionChanged)
	must(t, e.s.MarkDisconnected(c, "t", rk, c2, t0))
	if a, _ := e.s.GetAccount(c, "t", rk); a.ConnectionID != "" || a.Connected || a.LeaseRunID != "" {
		t.Fatalf("after disconnect: %+v", a)
	}
}

// TestCursorOutsideTheQuery: a well-formed cursor whose key lies outside
// the query's key range is the caller's mistake (400), not DynamoDB's
// ValidationException (500).
func TestCursorOutsideTheQuery(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := ctx(t)
	since := t0.Add(-time.Hour)
	for _, sk := range []string{"CHANGE#rakuten#~~", "CHANGE#rakuten#" + t0.Add(-2*time.Hour).Format(time.RFC3339)} {
		_, _, err := e.s.ListChanges(c, "t", rk, since, 10, base64URL(`{"k":"`+sk+`"}`))
		wantCode(t, err, merchantsync.EInvalid)
	}
}
