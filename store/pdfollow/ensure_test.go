package pdfollow_test

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rdb-project/rdb/pd/pdtest"
	"github.com/rdb-project/rdb/store/modetable"
	"github.com/rdb-project/rdb/store/pdfollow"
)

// TestEnsureCreatesInTheConfiguredMode: a request for a namespace the store
// has a --namespace-mode for, arriving before the store set it in PD,
// creates it in that mode; created in the default mode, it would be
// switched a moment later and its first caller would see it strong and
// switching (as the quickstart's first GetMode on logs once did).
func TestEnsureCreatesInTheConfiguredMode(t *testing.T) {
	pd := pdtest.NewCluster(t, 1)
	db, err := pebble.Open(t.TempDir(), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f, err := pdfollow.New(pdfollow.Config{
		StoreID: 1, AdvertiseAddr: "127.0.0.1:1", PD: []string{pd.Endpoint(0)}, DB: db, Table: modetable.New(),
		NamespaceModes: map[string]string{"logs": "eventual"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Not started: the seeding of --namespace-mode has not run.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec, err := f.Ensure(ctx, "logs")
	if err != nil {
		t.Fatal(err)
	}
	if rec.GetMode() != "eventual" || rec.GetFromDefault() {
		t.Fatalf("logs created as %v, want eventual as configured", rec)
	}
	// A namespace with no --namespace-mode takes the default.
	if rec, err := f.Ensure(ctx, "other"); err != nil || rec.GetMode() != "strong" || !rec.GetFromDefault() {
		t.Fatalf("other created as %v (%v), want strong from the default", rec, err)
	}
	// Once there, a namespace is returned as it is, whatever the flag says.
	if rec, err := f.Ensure(ctx, "logs"); err != nil || rec.GetMode() != "eventual" {
		t.Fatalf("logs again: %v (%v)", rec, err)
	}
}
