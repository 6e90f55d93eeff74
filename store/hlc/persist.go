// The encoding of the clock's durable upper bound of wall time. Storing it
// is the store's business (store/clockbound.go), so this package does not
// depend on the storage engine.

package hlc

import (
	"encoding/binary"
	"fmt"
)

// The upper bound is stored as 8 bytes, big-endian.
const upperLen = 8

// EncodeUpper encodes an upper bound as it is stored.
func EncodeUpper(upper int64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, upperLen), uint64(upper))
}

// DecodeUpper decodes a stored upper bound. It rejects a negative one: the
// clock never persists one (the bound saturates at math.MaxInt64), so it
// means corruption.
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
