// Storing the HLC's durable upper bound of wall time in the store's pebble
// DB. It lives here rather than in package hlc so the clock does not depend
// on the storage engine; hlc owns only the encoding (EncodeUpper,
// DecodeUpper).

package store

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/keys"
)

// loadClockBound reads the upper bound of wall time stored in db by
// persistClockBound, for hlc.Config.Persisted. A store that never persisted
// one reads 0.
func loadClockBound(db *pebble.DB) (int64, error) {
	v, closer, err := db.Get(keys.HLCUpper())
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("hlc: read upper bound: %w", err)
	}
	defer closer.Close()
	return hlc.DecodeUpper(v)
}

// persistClockBound returns an hlc.Config.Persist that stores the bound in
// db with a synced write, so the bound survives a crash before the clock
// hands out a timestamp that relies on it.
func persistClockBound(db *pebble.DB) func(upper int64) error {
	return func(upper int64) error {
		return db.Set(keys.HLCUpper(), hlc.EncodeUpper(upper), pebble.Sync)
	}
}
