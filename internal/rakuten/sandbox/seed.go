package sandbox

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// Demo credentials for the local stack (`make dev`): not secrets, they only
// open the sandbox.
const (
	DemoClientID      = "demo-client"
	DemoClientSecret  = "demo-secret"
	DemoSiteID        = "4022211"
	DemoUsername      = "demo"
	DemoPassword      = "demo-password"
	DemoMerchantCount = 480 // three pages of 200
)

// DemoAccount registers the demo account and seeds its merchants the first
// time it is called; later calls only return it.
func (s *Server) DemoAccount() Account {
	a := Account{ClientID: DemoClientID, ClientSecret: DemoClientSecret, SiteID: DemoSiteID,
		Username: DemoUsername, Password: DemoPassword}
	s.mu.Lock()
	c, ok := s.clients[a.ClientID]
	seeded := ok && c.sites[a.SiteID] == a
	s.mu.Unlock()
	if !seeded {
		s.AddAccount(a)
		s.SeedMerchants(a.SiteID, DemoMerchantCount, 1)
	}
	return a
}

func categoryNames() []string {
	return []string{"Apparel", "Beauty", "Books & Media", "Computers", "Electronics", "Home & Garden",
		"Sports & Outdoors", "Travel", "Toys & Games", "Health", "Food & Drink", "Jewelry"}
}

// statusWeights: mostly active, every other status present.
func statusWeights() []struct {
	status string
	weight int
} {
	return []struct {
		status string
		weight int
	}{
		{StatusActive, 70}, {StatusExtended, 5}, {StatusPending, 8}, {StatusTempDecline, 4},
		{StatusPermanentDecline, 3}, {StatusTempRemove, 4}, {StatusPermanentRemove, 3}, {StatusSelfRemoved, 3},
	}
}

// SeedMerchants adds n merchants to a site: a deterministic (for a seed)
// mix of all eight partnership statuses across networks 1, 3, 5 and 41,
// mostly active. When n ≥ 8 every status appears at least once. MIDs are
// unique within the site, including merchants already there.
func (s *Server) SeedMerchants(siteID string, n int, seed int64) {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	adjectives := []string{"Northwind", "Bluebird", "Summit", "Harbor", "Maple", "Crescent", "Evergreen", "Golden",
		"Riverside", "Silver", "Cedar", "Aurora", "Granite", "Willow", "Coastal", "Urban"}
	nouns := []string{"Outfitters", "Supply", "Boutique", "Electronics", "Books", "Travel", "Home", "Beauty",
		"Sports", "Gear", "Market", "Kitchen", "Toys", "Pets", "Wellness", "Studio"}
	cats := categoryNames()
	weights := statusWeights()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.merchants[siteID]
	used := make(map[int64]bool, len(ms)+n)
	for _, m := range ms {
		used[m.MID] = true
	}
	span := int64(max(100000, 20*(n+len(ms))))
	for i := range n {
		mid := 10000 + rng.Int64N(span)
		for used[mid] {
			mid = 10000 + rng.Int64N(span)
		}
		used[mid] = true

		status := ""
		if n >= len(weights) && i < len(weights) {
			status = weights[i].status
		} else {
			w := rng.IntN(100)
			for _, sw := range weights {
				if w < sw.weight {
					status = sw.status
					break
				}
				w -= sw.weight
			}
		}
		network := 1
		switch r := rng.IntN(100); {
		case r >= 90:
			network = 41
		case r >= 75:
			network = 5
		case r >= 60:
			network = 3
		}
		adv := "active"
		if rng.IntN(100) < 5 {
			adv = "inactive"
		}
		m := Merchant{
			MID:              mid,
			Network:          network,
			Name:             adjectives[rng.IntN(len(adjectives))] + " " + nouns[rng.IntN(len(nouns))] + " " + strconv.FormatInt(mid%1000, 10),
			Status:           status,
			AdvertiserStatus: adv,
			Categories:       []string{cats[rng.IntN(len(cats))]},
			AppliedAt:        base.Add(-time.Duration(30+rng.IntN(2000)) * 24 * time.Hour),
		}
		m.StatusUpdatedAt = m.AppliedAt.Add(time.Duration(1+rng.IntN(14)) * 24 * time.Hour)
		switch status {
		case StatusActive, StatusExtended, StatusTempRemove, StatusPermanentRemove, StatusSelfRemoved:
			m.ApprovedAt = m.StatusUpdatedAt
			if status != StatusActive && status != StatusExtended {
				m.StatusUpdatedAt = m.ApprovedAt.Add(time.Duration(1+rng.IntN(300)) * 24 * time.Hour)
			}
		case StatusPending:
			m.StatusUpdatedAt = m.AppliedAt
		}
		ms = sortedInsert(ms, m)
	}
	s.merchants[siteID] = ms
}
