package lww

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

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

// EpochNanos is the width of the time slices digests are also kept in. It
// lets two stores compare their records as they stood at a cutoff
// (DigestRequest's before_wall), so writes still on their way in a push
// do not make buckets differ. Part of the protocol between stores, like
// the hashes.
const EpochNanos = int64(250 * time.Millisecond)

// recentEpochs is how many slices, counted back from the newest change, a
// namespace keeps apart; older ones are folded into one. A cutoff older
// than that is answered with the digests of every record.
const recentEpochs = 128

// MaxSettle is the largest useful Config.AntiEntropySettle: half the
// slices kept apart, leaving the rest for clock offsets between stores.
const MaxSettle = time.Duration(recentEpochs/2) * time.Duration(EpochNanos)

// nsState is the in-memory state of one namespace: its bucket digests and
// the estimated bytes of each bucket.
//
// Every change to a key's record updates digest and bytes while the key's
// stripe lock is held, right after the write commits, so the digest
// matches the DB for every key nobody is writing. mu is held shared by
// every write and exclusively by Drop, which clears the namespace.
//
// Digests as of a cutoff: every change is also XORed into the slice of
// the new record's epoch, the old record's hash out and the new one's in.
// The XOR of the slices before a cutoff is then the digest of the records
// that were current at the cutoff: a record that replaced another after
// the cutoff is not counted, and neither is the removal of the one it
// replaced. Two stores that held the same records at the cutoff agree,
// even if one has since received writes the other has not yet.
type nsState struct {
	mu    sync.RWMutex
	bytes [NumBuckets]atomic.Int64
	// replacing is the batch whose replaces hold mu exclusively
	// (StageReplace), and replaces how many of them are staged in it; only
	// the batch's owner changes replaces.
	replacing atomic.Pointer[pebble.Batch]
	replaces  int

	// dmu guards the digests: settled holds the changes of epochs below
	// folded, recent those of folded and later, a slice per epoch. The
	// digests of every record are the XOR of them all.
	dmu     sync.Mutex
	settled [NumBuckets]uint64
	folded  int64
	recent  map[int64]*[NumBuckets]uint64
}

// epochOf returns the digest epoch of a wall time.
func epochOf(wall int64) int64 {
	if wall < 0 {
		return 0
	}
	return wall / EpochNanos
}

// xorLocked XORs h into bucket b of the slice of epoch ep.
func (s *nsState) xorLocked(b int, h uint64, ep int64) {
	if ep < s.folded {
		s.settled[b] ^= h
		return
	}
	slot := s.recent[ep]
	if slot == nil {
		if s.recent == nil {
			s.recent = make(map[int64]*[NumBuckets]uint64)
		}
		slot = new([NumBuckets]uint64)
		s.recent[ep] = slot
	}
	slot[b] ^= h
	if ep-recentEpochs > s.folded {
		s.foldLocked(ep - recentEpochs)
	}
}

// foldLocked folds the slices of epochs below to into settled.
func (s *nsState) foldLocked(to int64) {
	for ep, slot := range s.recent {
		if ep < to {
			for b := range NumBuckets {
				s.settled[b] ^= slot[b]
			}
			delete(s.recent, ep)
		}
	}
	s.folded = to
}

// change records in the digests that key went from old to new; a nil
// record is an absent key. new, if set, is newer than old. A record
// removed without a successor (a collected tombstone) is taken out at its
// own epoch: as of any cutoff, it is as if it had never been.
func (s *nsState) change(key []byte, old, new *record) {
	b := bucketOf(key)
	var delta int64
	s.dmu.Lock()
	switch {
	case new != nil:
		ep := epochOf(new.ts.Wall)
		if old != nil {
			s.xorLocked(b, recordHash(key, old.ts, old.tombstone), ep)
			delta -= recordSize(key, old.value)
		}
		s.xorLocked(b, recordHash(key, new.ts, new.tombstone), ep)
		delta += recordSize(key, new.value)
	case old != nil:
		s.xorLocked(b, recordHash(key, old.ts, old.tombstone), epochOf(old.ts.Wall))
		delta -= recordSize(key, old.value)
	}
	s.dmu.Unlock()
	s.bytes[b].Add(delta)
}

// digests returns the bucket digests of every record.
func (s *nsState) digests() []uint64 {
	out, _ := s.digestsBefore(0)
	return out
}

// digestsBefore returns the bucket digests of the records current at the
// cutoff before (its wall time, rounded down to an epoch), and the cutoff
// it used. A zero before, or one older than the slices kept apart, gives
// the digests of every record now and a zero cutoff.
func (s *nsState) digestsBefore(before int64) ([]uint64, int64) {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	cut := epochOf(before)
	all := before <= 0 || cut < s.folded
	out := append([]uint64(nil), s.settled[:]...)
	for ep, slot := range s.recent {
		if all || ep < cut {
			for b := range NumBuckets {
				out[b] ^= slot[b]
			}
		}
	}
	if all {
		return out, 0
	}
	return out, cut * EpochNanos
}

// reset clears the namespace's digests (the caller holds mu exclusively).
func (s *nsState) reset() {
	s.dmu.Lock()
	s.settled, s.recent = [NumBuckets]uint64{}, nil
	s.dmu.Unlock()
	for i := range NumBuckets {
		s.bytes[i].Store(0)
	}
}
