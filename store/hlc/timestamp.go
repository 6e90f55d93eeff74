// Package hlc provides the hybrid logical clock that stamps every write of
// an eventual namespace, and the Timestamp it hands out.
//
// A Timestamp is (wall, logical, store id), ordered in that order. The wall
// part follows the physical clock; the logical part orders events that share
// a wall time; the store id makes timestamps handed out by different stores
// distinct, so two writes never compare equal unless they are the same
// write. Every store must order timestamps identically, so the order is
// part of the wire protocol: Compare is the only definition of it.
package hlc

import (
	"fmt"
	"math"

	"github.com/rdb-project/rdb/proto/storepb"
)

// Timestamp is one reading of a hybrid logical clock.
type Timestamp struct {
	// Wall is a physical time in nanoseconds since the Unix epoch, or
	// slightly above it when the clock has seen a timestamp from the future.
	Wall int64
	// Logical orders timestamps that share a wall time.
	Logical uint32
	// StoreID is the store whose clock handed the timestamp out.
	StoreID uint64
}

// Compare returns -1, 0 or +1 as a is before, equal to or after b: by Wall,
// then Logical, then StoreID.
func Compare(a, b Timestamp) int {
	switch {
	case a.Wall < b.Wall:
		return -1
	case a.Wall > b.Wall:
		return 1
	case a.Logical < b.Logical:
		return -1
	case a.Logical > b.Logical:
		return 1
	case a.StoreID < b.StoreID:
		return -1
	case a.StoreID > b.StoreID:
		return 1
	}
	return 0
}

// Less reports whether t is before o.
func (t Timestamp) Less(o Timestamp) bool { return Compare(t, o) < 0 }

// Next returns the smallest timestamp after t with t's store id: Logical+1,
// or (Wall+1, Logical 0) when Logical is math.MaxUint32. It is for placing
// a timestamp strictly after a floor (a fence after the timestamps it
// covers). At the top, (math.MaxInt64, math.MaxUint32), there is no such
// timestamp and Next returns t unchanged rather than wrap around to before
// t: a caller that needs a strictly later one must check t.Less(t.Next()).
func (t Timestamp) Next() Timestamp {
	switch {
	case t.Logical < math.MaxUint32:
		t.Logical++
	case t.Wall < math.MaxInt64:
		t.Wall, t.Logical = t.Wall+1, 0
	}
	return t
}

// IsZero reports whether t is the zero Timestamp, which no clock hands out.
func (t Timestamp) IsZero() bool { return t == Timestamp{} }

// ToProto returns t as a storepb.Timestamp.
func (t Timestamp) ToProto() *storepb.Timestamp {
	return &storepb.Timestamp{WallTime: t.Wall, Logical: t.Logical, StoreId: t.StoreID}
}

// FromProto returns the Timestamp p carries; a nil p is the zero Timestamp.
func FromProto(p *storepb.Timestamp) Timestamp {
	if p == nil {
		return Timestamp{}
	}
	return Timestamp{Wall: p.GetWallTime(), Logical: p.GetLogical(), StoreID: p.GetStoreId()}
}

// String formats t as seconds.nanoseconds,logical@store, for example
// 1700000000.000000123,4@2.
func (t Timestamp) String() string {
	if t.Wall < 0 {
		return fmt.Sprintf("%d,%d@%d", t.Wall, t.Logical, t.StoreID)
	}
	return fmt.Sprintf("%d.%09d,%d@%d", t.Wall/1e9, t.Wall%1e9, t.Logical, t.StoreID)
}
