package store_test

// Start and Stop of one store: a Start that fails releases everything Open
// took, so the same data directory can be opened again at once.

import (
	"net"
	"testing"

	"github.com/rdb-project/rdb/store"
)

// TestFailedStartReleasesTheStore: Start on an address in use fails, and
// the data directory can then be opened and started again (pebble's lock
// was released).
func TestFailedStartReleasesTheStore(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := store.Config{StoreID: 1, Addr: busy.Addr().String(), DataDir: t.TempDir()}
	s, err := store.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err == nil {
		s.Stop()
		t.Fatal("Start on an address in use succeeded")
	}
	cfg.Addr = "127.0.0.1:0"
	s2, err := store.Open(cfg)
	if err != nil {
		t.Fatalf("Open after a failed Start: %v", err)
	}
	if err := s2.Start(); err != nil {
		t.Fatalf("Start after a failed Start: %v", err)
	}
	s2.Stop()
}
