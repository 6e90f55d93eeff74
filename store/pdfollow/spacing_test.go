package pdfollow_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/pd/report"
	"github.com/rdb-project/rdb/store/modetable"
	"github.com/rdb-project/rdb/store/pdfollow"
	"github.com/rdb-project/rdb/store/storetest"
)

// TestCostlyReportsKeepTheStoreUp: a store whose every report is costly
// (600ms, as a sweep of 100,000 namespaces on a busy store) and whose state
// keeps changing still heartbeats often enough that PD never counts it
// down (here after 3s of silence): PD forms new groups only on stores it
// counts up, so a store that went silent would be left out of every
// namespace created meanwhile.
func TestCostlyReportsKeepTheStoreUp(t *testing.T) {
	const (
		cost      = 600 * time.Millisecond
		downAfter = 3 * time.Second
		watch     = 7 * time.Second
	)
	pd := pdtest.NewCluster(t, 1, pdtest.WithStoreDownAfter(downAfter))
	db, err := pebble.Open(t.TempDir(), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	changed := make(chan struct{})
	close(changed) // the store's state changes all the time
	f, err := pdfollow.New(pdfollow.Config{
		StoreID: 1, AdvertiseAddr: "127.0.0.1:1", PD: []string{pd.Endpoint(0)}, DB: db, Table: modetable.New(),
		Changed: changed,
		Report: func(*report.Builder) {
			// The work a costly report does, as time.
			<-time.After(cost)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	f.Start(ctx, &wg, func(err error) { t.Errorf("follower stopped: %v", err) })
	defer func() {
		cancel()
		wg.Wait()
		f.Close()
	}()

	cli := pd.Client()
	defer cli.Close()
	up := func() bool {
		lctx, lcancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer lcancel()
		stores, err := cli.ListStores(lctx)
		if err != nil {
			t.Fatalf("list stores: %v", err)
		}
		return len(stores) == 1 && stores[0].GetUp()
	}
	storetest.Eventually(t, 10*time.Second, func() error {
		if !up() {
			return errors.New("not up")
		}
		return nil
	}, "the store registers as up")
	// Watched for more than twice PD's limit: spaced by ten times their
	// cost (6s), its heartbeats would leave it silent for longer.
	for end := time.Now().Add(watch); time.Now().Before(end); <-time.After(100 * time.Millisecond) {
		if !up() {
			t.Fatalf("PD counts the store down: heartbeats %v apart at most were expected (a report's cost and the spacing cap)", cost+500*time.Millisecond)
		}
	}
}
