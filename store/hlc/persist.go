package hlc

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rdb-project/rdb/store/keys"
)

// The upper bound is stored at keys.HLCUpper() as 8 bytes, big-endian.
const upperLen = 8

// LoadPersisted reads the upper bound of wall time stored in db by
// PebblePersist, for Config.Persisted. A store that never persisted one
// reads 0.
func LoadPersisted(db *pebble.DB) (int64, error) {
	v, closer, err := db.Get(keys.HLCUpper())
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("hlc: read upper bound: %w", err)
	}
	defer closer.Close()
	return DecodeUpper(v)
}

// PebblePersist returns a Config.Persist that stores the bound in db with a
// synced write, so the bound survives a crash before the clock uses it.
func PebblePersist(db *pebble.DB) func(upper int64) error {
	return func(upper int64) error {
		return db.Set(keys.HLCUpper(), EncodeUpper(upper), pebble.Sync)
	}
}

// EncodeUpper encodes an upper bound as it is stored.
func EncodeUpper(upper int64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, upperLen), uint64(upper))
}

// DecodeUpper decodes a stored upper bound.
func DecodeUpper(b []byte) (int64, error) {
	if len(b) != upperLen {
		return 0, fmt.Errorf("hlc: stored upper bound has %d bytes, want %d", len(b), upperLen)
	}
	v := int64(binary.BigEndian.Uint64(b))
	if v < 0 {
		return 0, fmt.Errorf("hlc: stored upper bound %d is negative", v)
	}
	return v, nil
}
