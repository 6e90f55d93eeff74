// Tests of storing the HLC's upper bound in pebble (clockbound.go): the
// bound survives closing the DB, and a clock restarted from it is after
// everything handed out before.

package store

import (
	"testing"

	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/keys"
)

func TestClockBoundSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	db, err := openDB(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := loadClockBound(db); err != nil || got != 0 {
		t.Fatalf("loadClockBound on a new DB = %d, %v", got, err)
	}
	c, err := hlc.New(hlc.Config{StoreID: 3, Persist: persistClockBound(db)})
	if err != nil {
		t.Fatal(err)
	}
	last, err := c.Now()
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = openDB(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	upper, err := loadClockBound(db)
	if err != nil {
		t.Fatal(err)
	}
	if upper <= last.Wall {
		t.Fatalf("persisted bound %d not above %v", upper, last)
	}
	// A clock whose physical time is far behind still starts above.
	c2, err := hlc.New(hlc.Config{StoreID: 3, Persisted: upper, Persist: persistClockBound(db), Physical: func() int64 { return 1 }})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := c2.Now()
	if err != nil {
		t.Fatal(err)
	}
	if !last.Less(ts) {
		t.Fatalf("restarted clock handed out %v, not after %v", ts, last)
	}
}

func TestLoadClockBoundRejectsCorruption(t *testing.T) {
	for _, tt := range []struct {
		name  string
		value []byte
	}{
		{"short", []byte{1, 2, 3}},
		{"negative", hlc.EncodeUpper(-1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db, err := openDB(t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.Set(keys.HLCUpper(), tt.value, nil); err != nil {
				t.Fatal(err)
			}
			if got, err := loadClockBound(db); err == nil {
				t.Fatalf("loadClockBound(%x) = %d, want an error", tt.value, got)
			}
		})
	}
}
