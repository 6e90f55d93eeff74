package lww

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/hlc"
)

// On-disk value of the record at keys.LWWKey(ns, key):
//
//	offset  size  field
//	0       1     codec version, 1
//	1       1     flags: bit 0 = tombstone; every other bit is zero
//	2       8     wall time, int64 big-endian
//	10      4     logical, uint32 big-endian
//	14      8     store id, uint64 big-endian
//	22      n     value (empty for a tombstone)
//
// The encoding is canonical: decodeValue accepts exactly what encodeValue
// produces, so a record read and written back is byte-identical.
const (
	codecVersion  = 1
	flagTombstone = 1 << 0
	headerLen     = 22
)

// errCorrupt is wrapped by every decoding error.
var errCorrupt = errors.New("lww: corrupt record")

// record is the decoded value of one key: its timestamp, whether it is a
// tombstone, and the value. value may alias the buffer it was decoded from.
type record struct {
	ts        hlc.Timestamp
	tombstone bool
	value     []byte
}

// encodeValue returns the on-disk form of r.
func encodeValue(r record) []byte {
	b := make([]byte, headerLen, headerLen+len(r.value))
	b[0] = codecVersion
	if r.tombstone {
		b[1] = flagTombstone
	}
	binary.BigEndian.PutUint64(b[2:], uint64(r.ts.Wall))
	binary.BigEndian.PutUint32(b[10:], r.ts.Logical)
	binary.BigEndian.PutUint64(b[14:], r.ts.StoreID)
	return append(b, r.value...)
}

// decodeValue decodes an on-disk value. It never panics; the value of the
// result aliases b.
func decodeValue(b []byte) (record, error) {
	if len(b) < headerLen {
		return record{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", errCorrupt, len(b), headerLen)
	}
	if b[0] != codecVersion {
		return record{}, fmt.Errorf("%w: codec version %d, want %d", errCorrupt, b[0], codecVersion)
	}
	if b[1]&^flagTombstone != 0 {
		return record{}, fmt.Errorf("%w: unknown flags %#x", errCorrupt, b[1])
	}
	r := record{
		ts: hlc.Timestamp{
			Wall:    int64(binary.BigEndian.Uint64(b[2:])),
			Logical: binary.BigEndian.Uint32(b[10:]),
			StoreID: binary.BigEndian.Uint64(b[14:]),
		},
		tombstone: b[1]&flagTombstone != 0,
		value:     b[headerLen:],
	}
	if r.tombstone && len(r.value) != 0 {
		return record{}, fmt.Errorf("%w: tombstone carries a %d-byte value", errCorrupt, len(r.value))
	}
	if len(r.value) > api.MaxValueBytes {
		return record{}, fmt.Errorf("%w: %d-byte value, above the %d-byte limit", errCorrupt, len(r.value), api.MaxValueBytes)
	}
	if r.ts.IsZero() {
		return record{}, fmt.Errorf("%w: zero timestamp", errCorrupt)
	}
	if len(r.value) == 0 {
		r.value = nil
	}
	return r, nil
}

// compareRecords totally orders two versions of one key; the greater one
// wins (hlc.CompareWrites, the one merge rule).
func compareRecords(a, b record) int {
	return hlc.CompareWrites(a.ts, a.tombstone, a.value, b.ts, b.tombstone, b.value)
}

// Newer reports whether a wins over b under the merge rule every store
// applies: the greater timestamp wins (wall time, then logical, then store
// id); at an exactly equal timestamp a tombstone wins over a value (and
// between two values the bytewise greater one, which a correct cluster
// never needs). Identical records are equal: neither is newer. Any record
// is newer than nil, and nil is never newer. The keys are not compared.
func Newer(a, b *storepb.LWWRecord) bool {
	if a == nil {
		return false
	}
	if b == nil {
		return true
	}
	return compareRecords(fromProto(a), fromProto(b)) > 0
}

// fromProto returns the record r carries (its value aliases r's).
func fromProto(r *storepb.LWWRecord) record {
	return record{ts: hlc.FromProto(r.GetTs()), tombstone: r.GetTombstone(), value: r.GetValue()}
}

// toProto returns r as the LWWRecord of key. It copies key and value.
func (r record) toProto(key []byte) *storepb.LWWRecord {
	p := &storepb.LWWRecord{
		Key:       bytes.Clone(key),
		Ts:        r.ts.ToProto(),
		Tombstone: r.tombstone,
	}
	if len(r.value) > 0 {
		p.Value = bytes.Clone(r.value)
	}
	return p
}
