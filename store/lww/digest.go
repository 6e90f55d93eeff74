package lww

import (
	"sync"
	"sync/atomic"

	"github.com/rdb-project/rdb/store/hlc"
)

// Bucket digests: every namespace's keys fall into NumBuckets buckets by a
// hash of the key, and a bucket's digest is the XOR of recordHash over its
// records. XOR makes the digest incremental (a write XORs out the old
// record's hash and XORs in the new one) and independent of the order of
// writes, so two stores holding the same records hold the same digests.
//
// Both hashes are part of the protocol between stores: a store running a
// different function would see every bucket differ and repair everything,
// every round. Change them only with every store.
const NumBuckets = 256

// fnv64a returns the 64-bit FNV-1a hash of b.
func fnv64a(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

const fnvOffset = 14695981039346656037

// mix64 is the splitmix64 finalizer: it spreads every input bit over the
// whole output.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// bucketOf returns the bucket of a user key.
func bucketOf(key []byte) int {
	return int(mix64(fnv64a(fnvOffset, key)) >> 56)
}

// recordHash hashes what identifies a version of a key: the key, the
// timestamp and the tombstone flag. The value is left out: a timestamp
// identifies one write, hence one value.
func recordHash(key []byte, ts hlc.Timestamp, tombstone bool) uint64 {
	h := mix64(fnv64a(fnvOffset, key))
	h = mix64(h ^ uint64(ts.Wall))
	t := uint64(ts.Logical) << 1
	if tombstone {
		t |= 1
	}
	h = mix64(h ^ t)
	h = mix64(h ^ ts.StoreID)
	// Zero is what an empty bucket holds; keep one record from cancelling
	// out to it.
	if h == 0 {
		h = 1
	}
	return h
}

// recordSize estimates the bytes a record takes in a message.
func recordSize(key, value []byte) int64 { return int64(len(key) + len(value) + 40) }

// nsState is the in-memory state of one namespace: its bucket digests and
// the estimated bytes of each bucket.
//
// Every change to a key's record updates digest and bytes while the key's
// stripe lock is held, right after the write commits, so the digest
// matches the DB for every key nobody is writing. mu is held shared by
// every write and exclusively by Drop, which clears the namespace.
type nsState struct {
	mu     sync.RWMutex
	digest [NumBuckets]atomic.Uint64
	bytes  [NumBuckets]atomic.Int64
}

// add XORs a record in or out of its bucket and adjusts the bucket's size
// by delta bytes.
func (s *nsState) add(key []byte, r record, delta int64) {
	b := bucketOf(key)
	h := recordHash(key, r.ts, r.tombstone)
	d := &s.digest[b]
	for {
		old := d.Load()
		if d.CompareAndSwap(old, old^h) {
			break
		}
	}
	s.bytes[b].Add(delta)
}

// change records in the digests that key went from old to new; a nil
// record is an absent key.
func (s *nsState) change(key []byte, old, new *record) {
	if old != nil {
		s.add(key, *old, -recordSize(key, old.value))
	}
	if new != nil {
		s.add(key, *new, recordSize(key, new.value))
	}
}

// digests returns a copy of the bucket digests.
func (s *nsState) digests() []uint64 {
	out := make([]uint64, NumBuckets)
	for i := range out {
		out[i] = s.digest[i].Load()
	}
	return out
}

// reset clears the namespace's digests (the caller holds mu exclusively).
func (s *nsState) reset() {
	for i := range NumBuckets {
		s.digest[i].Store(0)
		s.bytes[i].Store(0)
	}
}
