package hlc

// The last-writer-wins order of two writes of one key: the one rule every
// store resolves replicas with (the LWW engine, and the merge of a switch
// to strong). It belongs with the timestamps it orders.

import "bytes"

// CompareWrites returns -1, 0 or +1 as write a loses to, equals or wins over
// write b of the same key:
//  1. the greater timestamp wins (Compare);
//  2. at an equal timestamp, a tombstone wins over a value;
//  3. at an equal timestamp between two values, the bytewise greater value
//     wins. No clock hands out one timestamp twice, so this only matters if
//     two stores were given different values at one timestamp; it keeps
//     the order total, so replicas converge even then.
//
// The result depends on nothing but the two writes, so every store
// resolves every pair identically, in any order of arrival.
func CompareWrites(a Timestamp, aTombstone bool, aValue []byte, b Timestamp, bTombstone bool, bValue []byte) int {
	if c := Compare(a, b); c != 0 {
		return c
	}
	switch {
	case aTombstone && !bTombstone:
		return 1
	case !aTombstone && bTombstone:
		return -1
	}
	return bytes.Compare(aValue, bValue)
}
