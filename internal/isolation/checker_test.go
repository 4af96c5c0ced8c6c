package isolation

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/merchantsync/merchantsync/internal/httpapi"
)

// markers is everything that identifies tenant A: none of it may appear in
// a response to tenant B.
type markers struct {
	strs   []string        // substrings: tenant id, merchant-name word, ids, run ids
	mids   map[int64]bool  // A's advertiser ids (compared as JSON numbers)
	runIDs map[string]bool // A's run ids
}

func (w *world) markersOf(tn *tenant, word string) markers {
	mk := markers{
		strs:   []string{tn.ID, word, tn.AffiliateID, tn.SiteID, tn.Account.ClientID, tn.Account.Username},
		mids:   tn.mids(),
		runIDs: map[string]bool{},
	}
	for _, id := range w.runIDs(tn.ID) {
		mk.strs = append(mk.strs, id)
		mk.runIDs[id] = true
	}
	return mk
}

// probe is one request tenant B sends.
type probe struct {
	key    string            // the route key it exercises
	params map[string]string // path parameters other than {network}
	query  map[string]string
	body   string
	// status, when set, lists the acceptable statuses.
	status []int
	// after runs once the response is checked (e.g. run the sync worker).
	after func()
}

func (p probe) path() string {
	_, tpl, _ := strings.Cut(p.key, " ")
	path := strings.ReplaceAll(tpl, "{network}", network)
	for k, v := range p.params {
		path = strings.ReplaceAll(path, "{"+k+"}", v)
	}
	return path
}

func (p probe) String() string {
	s := p.key
	if len(p.params) > 0 {
		s += fmt.Sprint(" ", p.params)
	}
	if len(p.query) > 0 {
		s += fmt.Sprint(" ?", p.query)
	}
	if p.body != "" {
		s += " " + p.body
	}
	return s
}

// inputs are the strings B itself sent: echoing them back is not a leak.
func (p probe) inputs() []string {
	var in []string
	for _, v := range p.params {
		in = append(in, v)
	}
	for _, v := range p.query {
		in = append(in, v)
	}
	if p.body != "" {
		in = append(in, p.body)
		var fields map[string]any
		_ = json.Unmarshal([]byte(p.body), &fields)
		for _, v := range fields {
			if s, ok := v.(string); ok && s != "" {
				in = append(in, s)
			}
		}
	}
	// Longest first, so a value is removed before its substrings.
	sort.Slice(in, func(i, j int) bool { return len(in[i]) > len(in[j]) })
	return in
}

// forgeCursor builds a cursor the way the store encodes one (base64url of
// {"k": sk}) from any JSON object.
func forgeCursor(v any, std bool) string {
	b, _ := json.Marshal(v)
	if std {
		return base64.StdEncoding.EncodeToString(b)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// cursorsOf returns A's real next cursors of a list (taken as A) and forged
// cursors pointing into A's items: A's sort keys, with and without A's
// partition key next to them.
func (w *world) cursorsOf(r routers, path string, query map[string]string, sks []string) []string {
	w.t.Helper()
	res := w.mustCall(r.API, w.A.ID, "GET", path, query, "", 200)
	next, _ := res.JSON.(map[string]any)["nextCursor"].(string)
	if next == "" {
		w.t.Fatalf("A's %s %v has no next page: the suite needs one", path, query)
	}
	out := []string{next}
	for _, sk := range sks {
		out = append(out,
			forgeCursor(map[string]string{"k": sk}, false),
			forgeCursor(map[string]string{"k": sk}, true),
			forgeCursor(map[string]string{"k": sk, "PK": "TENANT#" + w.A.ID, "pk": "TENANT#" + w.A.ID}, false),
			forgeCursor(map[string]string{"k": "TENANT#" + w.A.ID + "#" + sk}, false),
		)
	}
	return out
}

// routeKeys lists every route of the three routers.
func routeKeys(r routers) map[string]*httpapi.Router {
	out := map[string]*httpapi.Router{}
	for _, rt := range r.all() {
		for _, k := range rt.Keys() {
			out[k] = rt
		}
	}
	return out
}

// result is what one walk found.
type result struct {
	violations []string
	exercised  map[string]int // route key → requests sent
	requests   int
}

// checkIsolation walks every route of r as tenant B and returns every way
// B saw, changed or touched tenant A's data. r may be built on a broken
// store; the world's own store is the ground truth the checks read.
func checkIsolation(w *world, r routers) result {
	w.t.Helper()
	A, B := w.A, w.B
	res := result{exercised: map[string]int{}}
	bad := func(format string, args ...any) {
		res.violations = append(res.violations, fmt.Sprintf(format, args...))
	}

	mkA := w.markersOf(A, "Alphaville")
	aRuns := w.runIDs(A.ID)
	bRuns := w.runIDs(B.ID)
	aMids := slices.Sorted(func(yield func(int64) bool) {
		for m := range mkA.mids {
			if !yield(m) {
				return
			}
		}
	})
	relSK := func(mid int64) string { return fmt.Sprintf("REL#%s#%05d#%019d", network, 1, mid) }

	// A's cursors, real and forged, for every paged list.
	runCursors := w.cursorsOf(w.setup, "/v1/networks/rakuten/sync-runs", map[string]string{"limit": "1"},
		[]string{"RUN#" + network + "#" + aRuns[0], "RUN#" + network + "#" + aRuns[len(aRuns)-1]})
	relCursors := w.cursorsOf(w.setup, "/v1/networks/rakuten/relationships", map[string]string{"limit": "5"},
		[]string{relSK(aMids[0]), relSK(aMids[len(aMids)-1]), relSK(B.Merchants[0].MID - 1)})
	changes := w.mustCall(w.setup.API, A.ID, "GET", "/v1/networks/rakuten/changes", nil, "", 200)
	var changeSKs []string
	for _, it := range items(changes.JSON) {
		at, _ := it["at"].(string)
		mid, _ := it["advertiserId"].(float64)
		changeSKs = append(changeSKs, fmt.Sprintf("CHANGE#%s#%s#%05d#%019d", network, at, 1, int64(mid)))
	}
	chgCursors := w.cursorsOf(w.setup, "/v1/networks/rakuten/changes", map[string]string{"limit": "1"}, changeSKs)

	aSnap := w.snapshot(A.ID)
	aSecret, aHasSecret := w.secretOf(A.ID)
	if !aHasSecret {
		w.t.Fatal("A has no secret before the walk")
	}

	const (
		listNetworks  = "GET /v1/networks"
		getNetwork    = "GET /v1/networks/{network}"
		putIDs        = "PUT /v1/networks/{network}/ids"
		deleteIDs     = "DELETE /v1/networks/{network}/ids"
		getSettings   = "GET /v1/merchantsync/settings"
		putSettings   = "PUT /v1/merchantsync/settings"
		listRuns      = "GET /v1/networks/{network}/sync-runs"
		getRun        = "GET /v1/networks/{network}/sync-runs/{runId}"
		listRels      = "GET /v1/networks/{network}/relationships"
		listChanges   = "GET /v1/networks/{network}/changes"
		putCreds      = "PUT /v1/networks/{network}/credentials"
		deleteCreds   = "DELETE /v1/networks/{network}/credentials"
		postSync      = "POST /v1/networks/{network}/sync"
		createHook    = "POST /v1/webhooks"
		listHooks     = "GET /v1/webhooks"
		getHook       = "GET /v1/webhooks/{webhookId}"
		deleteHook    = "DELETE /v1/webhooks/{webhookId}"
		testHook      = "POST /v1/webhooks/{webhookId}/test"
		hookLog       = "GET /v1/webhooks/{webhookId}/deliveries"
		okOrBadCursor = 400
	)
	mkA.strs = append(mkA.strs, w.aHook, "alphaville-hooks", "msg_alphaville1")
	q := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	reads := func() []probe {
		ps := []probe{
			{key: listNetworks, status: []int{200}},
			{key: getNetwork, status: []int{200}},
			{key: getSettings, status: []int{200}},
			{key: listRuns, status: []int{200}},
			{key: listRuns, query: q("limit", "1"), status: []int{200}},
			{key: listRels, status: []int{200}},
			{key: listRels, query: q("limit", "5"), status: []int{200}},
			{key: listChanges, status: []int{200}},
			{key: listChanges, query: q("since", "2000-01-01T00:00:00Z", "limit", "1"), status: []int{200}},
		}
		for _, s := range []string{"joined", "pending", "declined", "removed", "left", "unknown"} {
			ps = append(ps, probe{key: listRels, query: q("status", s), status: []int{200}})
		}
		// A's run ids: not found for B, whatever B's own state.
		for _, id := range aRuns {
			ps = append(ps, probe{key: getRun, params: q("runId", id), status: []int{404}})
		}
		for _, c := range runCursors {
			ps = append(ps, probe{key: listRuns, query: q("cursor", c), status: []int{200, okOrBadCursor}},
				probe{key: listRuns, query: q("cursor", c, "limit", "1"), status: []int{200, okOrBadCursor}})
		}
		for _, c := range relCursors {
			ps = append(ps, probe{key: listRels, query: q("cursor", c), status: []int{200, okOrBadCursor}},
				probe{key: listRels, query: q("cursor", c, "status", "joined"), status: []int{200, okOrBadCursor}})
		}
		// A's webhook: not found for B by any route.
		ps = append(ps,
			probe{key: listHooks, status: []int{200}},
			probe{key: getHook, params: q("webhookId", w.aHook), status: []int{404}},
			probe{key: hookLog, params: q("webhookId", w.aHook), status: []int{404}},
			probe{key: testHook, params: q("webhookId", w.aHook), status: []int{404}},
			probe{key: deleteHook, params: q("webhookId", w.aHook), status: []int{404}},
		)
		for _, c := range chgCursors {
			ps = append(ps, probe{key: listChanges, query: q("cursor", c), status: []int{200, okOrBadCursor}},
				probe{key: listChanges, query: q("cursor", c, "since", "2000-01-01T00:00:00Z"), status: []int{200, okOrBadCursor}})
		}
		return ps
	}

	var probes []probe
	probes = append(probes, reads()...)
	// B's own runs are found (the 404s above are not an empty table).
	for _, id := range bRuns {
		probes = append(probes, probe{key: getRun, params: q("runId", id), status: []int{200}})
	}
	drain := func() { w.drainQueue(1) }
	probes = append(probes,
		// Writes: each must change nothing of A.
		probe{key: putIDs, body: `{"affiliateId":"BravoNew0B3","siteId":"` + B.SiteID + `"}`, status: []int{200}},
		probe{key: putIDs, body: `{"affiliateId":"` + A.AffiliateID + `","siteId":"` + A.SiteID + `"}`, status: []int{200}},
		probe{key: putIDs, body: `{"affiliateId":"` + B.AffiliateID + `","siteId":"` + B.SiteID + `"}`, status: []int{200}},
		probe{key: putSettings, body: `{"enabled":false}`, status: []int{200}},
		probe{key: postSync, status: []int{409}}, // disabled
		probe{key: putSettings, body: `{"enabled":true}`, status: []int{200}},
		probe{key: postSync, status: []int{202}, after: drain},
		probe{key: postSync, query: q("wait", "1"), status: []int{200, 202}, after: drain},
		probe{key: putCreds, body: strings.Replace(credBody(B), B.Account.Password, "wrong-password", 1), status: []int{422}},
		probe{key: putCreds, body: credBody(B), status: []int{200}},
		probe{key: deleteCreds, status: []int{200}},
		probe{key: deleteCreds, status: []int{200}},
		probe{key: postSync, status: []int{409}}, // not connected
		probe{key: putCreds, body: credBody(B), status: []int{200}},
		probe{key: deleteIDs, status: []int{200}},
		probe{key: deleteIDs, status: []int{200}},
	)
	// B's own webhook works end to end (the 404s above are not a broken router).
	bHook := w.mustCall(w.setup.Webhooks, B.ID, "POST", "/v1/webhooks", nil, `{"url":"https://bravotown-hooks.example.com/in"}`, 201)
	bHookID, _ := bHook.JSON.(map[string]any)["id"].(string)
	probes = append(probes,
		probe{key: createHook, body: `{"url":"https://bravotown-hooks.example.com/second"}`, status: []int{201}},
		probe{key: getHook, params: q("webhookId", bHookID), status: []int{200}},
		probe{key: testHook, params: q("webhookId", bHookID), status: []int{202}},
		probe{key: hookLog, params: q("webhookId", bHookID), status: []int{200}},
		probe{key: deleteHook, params: q("webhookId", bHookID), status: []int{200}},
	)
	// After B's deletes, every read again.
	probes = append(probes, reads()...)

	keys := routeKeys(r)
	for _, p := range probes {
		rt := keys[p.key]
		if rt == nil {
			bad("%s: no router serves this route key (stale probe)", p)
			continue
		}
		method, _, _ := strings.Cut(p.key, " ")
		got := w.call(rt, B.ID, method, p.path(), p.query, p.body)
		res.exercised[p.key]++
		res.requests++
		if len(p.status) > 0 && !slices.Contains(p.status, got.Status) {
			bad("%s: status %d, want one of %v: %s", p, got.Status, p.status, truncate(got.Body))
		}
		if got.Status >= 500 {
			bad("%s: server error %d: %s", p, got.Status, truncate(got.Body))
		}
		if p.after != nil && got.Status < 300 {
			p.after()
		}
		bRunsNow := map[string]bool{}
		for _, id := range w.runIDs(B.ID) {
			bRunsNow[id] = true
		}
		for _, v := range leaks(got.JSON, mkA, p.inputs()) {
			bad("%s: A's data in B's response: %s", p, v)
		}
		for _, v := range foreignItems(got.JSON, B.mids(), bRunsNow) {
			bad("%s: an item that is not B's: %s", p, v)
		}
		if after := w.snapshot(A.ID); !slices.Equal(after, aSnap) {
			bad("%s: A's items changed (%d items before, %d after)", p, len(aSnap), len(after))
			aSnap = after // report each change once
		}
		if s, ok := w.secretOf(A.ID); ok != aHasSecret || s != aSecret {
			bad("%s: A's secret was deleted or changed (present=%v)", p, ok)
			aSecret, aHasSecret = s, ok // report each change once
		}
	}
	return res
}

// items returns the "items" of a list response.
func items(v any) []map[string]any {
	var out []map[string]any
	m, _ := v.(map[string]any)
	list, _ := m["items"].([]any)
	for _, it := range list {
		if o, ok := it.(map[string]any); ok {
			out = append(out, o)
		}
	}
	return out
}

// leaks walks a JSON response and reports every string containing one of
// A's markers (after removing B's own inputs echoed back), every number
// equal to one of A's advertiser ids, and every next cursor that points at
// one of A's items.
func leaks(v any, mk markers, inputs []string) []string {
	var out []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				if k == "nextCursor" {
					if s, ok := c.(string); ok {
						if sk := decodeCursorSK(s); sk != "" && skIsA(sk, mk) {
							out = append(out, fmt.Sprintf("%s.nextCursor points at A's item %s", path, sk))
						}
					}
				}
				walk(path+"."+k, c)
			}
		case []any:
			for i, c := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), c)
			}
		case string:
			s := x
			for _, in := range inputs {
				s = strings.ReplaceAll(s, in, "")
			}
			for _, m := range mk.strs {
				if m != "" && strings.Contains(s, m) {
					out = append(out, fmt.Sprintf("%s = %q contains %q", path, truncate(x), m))
				}
			}
		case float64:
			if mk.mids[int64(x)] {
				out = append(out, fmt.Sprintf("%s = %d is A's advertiser id", path, int64(x)))
			}
		}
	}
	walk("$", v)
	sort.Strings(out)
	return out
}

// foreignItems reports list items, run views and next cursors that do not
// belong to B: an advertiser B has no partnership with, a run B does not own.
func foreignItems(v any, bMids map[int64]bool, bRuns map[string]bool) []string {
	var out []string
	check := func(where string, it map[string]any) {
		if mid, ok := it["advertiserId"].(float64); ok && !bMids[int64(mid)] {
			out = append(out, fmt.Sprintf("%s advertiserId %d", where, int64(mid)))
		}
		if id, ok := it["runId"].(string); ok && id != "" && !bRuns[id] {
			out = append(out, fmt.Sprintf("%s runId %s", where, id))
		}
	}
	m, _ := v.(map[string]any)
	if m == nil {
		return nil
	}
	for i, it := range items(v) {
		check(fmt.Sprintf("items[%d]", i), it)
	}
	if _, isList := m["items"]; !isList {
		if _, isErr := m["error"]; !isErr {
			check("$", m) // one run or one view
		}
	}
	if lr, ok := m["lastRun"].(map[string]any); ok {
		check("lastRun", lr)
	}
	if id, ok := m["activeRunId"].(string); ok && id != "" && !bRuns[id] {
		out = append(out, "activeRunId "+id)
	}
	if c, ok := m["nextCursor"].(string); ok {
		sk := decodeCursorSK(c)
		if mid, ok := skMID(sk); ok && !bMids[mid] {
			out = append(out, fmt.Sprintf("nextCursor %s", sk))
		}
		if id, ok := strings.CutPrefix(sk, "RUN#"+network+"#"); ok && !bRuns[id] {
			out = append(out, fmt.Sprintf("nextCursor %s", sk))
		}
	}
	return out
}

func decodeCursorSK(c string) string {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(c, "="))
	if err != nil {
		return ""
	}
	var cur struct {
		K string `json:"k"`
	}
	_ = json.Unmarshal(b, &cur)
	return cur.K
}

// skMID returns the advertiser id of a REL# or CHANGE# sort key (its last field).
func skMID(sk string) (int64, bool) {
	if !strings.HasPrefix(sk, "REL#") && !strings.HasPrefix(sk, "CHANGE#") {
		return 0, false
	}
	var mid int64
	_, err := fmt.Sscan(strings.TrimLeft(sk[strings.LastIndex(sk, "#")+1:], "0"), &mid)
	return mid, err == nil
}

func skIsA(sk string, mk markers) bool {
	if mid, ok := skMID(sk); ok {
		return mk.mids[mid]
	}
	if id, ok := strings.CutPrefix(sk, "RUN#"+network+"#"); ok {
		return mk.runIDs[id]
	}
	return false
}

func truncate(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
