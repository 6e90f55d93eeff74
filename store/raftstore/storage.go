package raftstore

// What Raft keeps of a group in pebble, and how it is loaded at start-up.
// Raft reads the log from pebble too (groupStorage), not from memory.
//
// Invariants:
//   - Log entries and the HardState are written in the round's persist
//     batch, synced when Raft says MustSync, before any message that
//     depends on them is sent by a follower and before they are applied.
//   - The applied index is written in the same batch as the state it
//     describes (the round's apply batch, unsynced). Pebble's WAL is
//     ordered, so once any later batch is synced the apply batch is durable
//     too; after a crash the store re-applies from the durable log.
//   - The log is truncated only below an applied index that is durable.

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/kvread"
)

// initIndex and initTerm are where a bootstrapped group's log starts: its
// first state is written directly, as if entries 1..initIndex had been
// applied, so every store that bootstraps a group starts identical and a
// store that joins later always catches up by snapshot.
const (
	initIndex uint64 = 5
	initTerm  uint64 = 5
)

// appliedState is r/<g>/applied: the last applied entry and the
// membership after it.
type appliedState struct {
	index, term uint64
	conf        *eraftpb.ConfState
}

func encodeApplied(a appliedState) ([]byte, error) {
	cs, err := proto.Marshal(a.conf)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 16+len(cs))
	b = binary.BigEndian.AppendUint64(b, a.index)
	b = binary.BigEndian.AppendUint64(b, a.term)
	return append(b, cs...), nil
}

func decodeApplied(b []byte) (appliedState, error) {
	if len(b) < 16 {
		return appliedState{}, fmt.Errorf("raftstore: applied state is %d bytes", len(b))
	}
	cs := &eraftpb.ConfState{}
	if err := proto.Unmarshal(b[16:], cs); err != nil {
		return appliedState{}, fmt.Errorf("raftstore: applied conf state: %w", err)
	}
	return appliedState{index: binary.BigEndian.Uint64(b), term: binary.BigEndian.Uint64(b[8:]), conf: cs}, nil
}

func encodeIndexTerm(index, term uint64) []byte {
	b := binary.BigEndian.AppendUint64(nil, index)
	return binary.BigEndian.AppendUint64(b, term)
}

func decodeIndexTerm(b []byte) (uint64, uint64, error) {
	if len(b) != 16 {
		return 0, 0, fmt.Errorf("raftstore: index/term is %d bytes", len(b))
	}
	return binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]), nil
}

// storageOwner is what a group's storage needs of the group: an
// interface, not two closures, so that a group costs two heap objects
// fewer (100,000 groups are scanned by every GC cycle).
type storageOwner interface {
	appliedConf() *eraftpb.ConfState
	makeSnapshot() (*eraftpb.Snapshot, error)
}

// groupStorage is raft.Storage for one group over pebble: the log is read
// from the DB (r/<g>/log/<index>), behind a small cache of the newest
// entries, so an idle group keeps no entry in memory. Its Snapshot is built
// on demand from the applied state, so the log can be truncated freely
// below the applied index. Loop only: raft calls it from the loop, and the
// loop updates it (install, compact) after each persisted round.
type groupStorage struct {
	db    *pebble.DB
	group uint64
	hs    *eraftpb.HardState
	// owner gives the applied configuration and builds snapshots (the
	// group; nil in tests that need neither).
	owner storageOwner
	// The log holds first..last; first-1 (truncTerm) is the truncation
	// point. lastTerm is the term of last.
	first, truncTerm uint64
	last, lastTerm   uint64
	// cache holds the newest entries, contiguous, ending at last;
	// cacheBytes their size.
	cache      []*eraftpb.Entry
	cacheBytes int
	// hits and reads, if set, count the entry lookups the cache answered
	// and those read from the DB.
	hits, reads *atomic.Uint64
}

func count(c *atomic.Uint64) {
	if c != nil {
		c.Add(1)
	}
}

// entryCacheBytes bounds a group's cache of its newest log entries: enough
// for every follower that keeps up, and for the entries not applied yet.
const entryCacheBytes = 1 << 20

func (s *groupStorage) InitialState() (*eraftpb.HardState, *eraftpb.ConfState, error) {
	hs := &eraftpb.HardState{}
	if s.hs != nil {
		hs = proto.Clone(s.hs).(*eraftpb.HardState)
	}
	cs := &eraftpb.ConfState{}
	var c *eraftpb.ConfState
	if s.owner != nil {
		c = s.owner.appliedConf()
	}
	if c != nil {
		cs = proto.Clone(c).(*eraftpb.ConfState)
	}
	return hs, cs, nil
}

func (s *groupStorage) FirstIndex() (uint64, error) { return s.first, nil }
func (s *groupStorage) LastIndex() (uint64, error)  { return s.last, nil }
func (s *groupStorage) Snapshot() (*eraftpb.Snapshot, error) {
	if s.owner == nil {
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	return s.owner.makeSnapshot()
}

func (s *groupStorage) Term(i uint64) (uint64, error) {
	switch {
	case i == s.first-1:
		return s.truncTerm, nil
	case i < s.first-1:
		return 0, raft.ErrCompacted
	case i > s.last:
		return 0, raft.ErrUnavailable
	case i == s.last:
		return s.lastTerm, nil
	}
	if e := s.cached(i); e != nil {
		count(s.hits)
		return e.GetTerm(), nil
	}
	count(s.reads)
	e, err := s.read(i)
	if err != nil {
		return 0, err
	}
	return e.GetTerm(), nil
}

// Entries returns entries lo..hi-1, at most maxSize bytes of them (at least
// one).
func (s *groupStorage) Entries(lo, hi, maxSize uint64) ([]*eraftpb.Entry, error) {
	if lo < s.first {
		return nil, raft.ErrCompacted
	}
	if hi > s.last+1 {
		return nil, fmt.Errorf("raftstore: group %d: entries up to %d, beyond the log's last index %d", s.group, hi-1, s.last)
	}
	if lo >= hi {
		return nil, nil
	}
	if len(s.cache) > 0 && lo >= s.cache[0].GetIndex() {
		count(s.hits)
		off := lo - s.cache[0].GetIndex()
		return limitSize(s.cache[off:off+(hi-lo)], maxSize), nil
	}
	count(s.reads)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: keys.LogEntry(s.group, lo), UpperBound: keys.LogEntry(s.group, hi)})
	if err != nil {
		return nil, err
	}
	var out []*eraftpb.Entry
	var size uint64
	next := lo
	for it.First(); it.Valid(); it.Next() {
		e := &eraftpb.Entry{}
		if err := proto.Unmarshal(it.Value(), e); err != nil {
			_ = it.Close()
			return nil, fmt.Errorf("raftstore: group %d entry: %w", s.group, err)
		}
		if e.GetIndex() != next {
			_ = it.Close()
			return nil, fmt.Errorf("raftstore: group %d log has a gap: want index %d, found %d", s.group, next, e.GetIndex())
		}
		size += uint64(proto.Size(e))
		if len(out) > 0 && size > maxSize {
			break
		}
		out = append(out, e)
		next++
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	if len(out) == 0 || (next < hi && size <= maxSize) {
		return nil, fmt.Errorf("raftstore: group %d log ends at %d, want entries %d..%d", s.group, next-1, lo, hi-1)
	}
	return out, nil
}

// limitSize keeps the entries whose total size is within maxSize (at least
// one).
func limitSize(ents []*eraftpb.Entry, maxSize uint64) []*eraftpb.Entry {
	if len(ents) == 0 {
		return ents
	}
	size := uint64(proto.Size(ents[0]))
	n := 1
	for ; n < len(ents); n++ {
		size += uint64(proto.Size(ents[n]))
		if size > maxSize {
			break
		}
	}
	return ents[:n:n]
}

func (s *groupStorage) cached(i uint64) *eraftpb.Entry {
	if len(s.cache) == 0 || i < s.cache[0].GetIndex() || i > s.last {
		return nil
	}
	return s.cache[i-s.cache[0].GetIndex()]
}

// read reads entry i from the DB.
func (s *groupStorage) read(i uint64) (*eraftpb.Entry, error) {
	b, ok, err := kvread.Get(s.db, keys.LogEntry(s.group, i))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("raftstore: group %d: log entry %d missing (log %d..%d)", s.group, i, s.first, s.last)
	}
	e := &eraftpb.Entry{}
	if err := proto.Unmarshal(b, e); err != nil {
		return nil, fmt.Errorf("raftstore: group %d entry %d: %w", s.group, i, err)
	}
	return e, nil
}

// append makes persisted entries visible: they replace any entries from
// their first index on. Loop only, after the round's batch is committed.
func (s *groupStorage) append(ents []*eraftpb.Entry) {
	if len(ents) == 0 {
		return
	}
	first := ents[0].GetIndex()
	if len(s.cache) > 0 {
		c0 := s.cache[0].GetIndex()
		switch {
		case first <= c0:
			s.dropCache()
		case first <= s.cache[len(s.cache)-1].GetIndex()+1:
			keep := int(first - c0)
			for _, e := range s.cache[keep:] {
				s.cacheBytes -= proto.Size(e)
			}
			clear(s.cache[keep:])
			s.cache = s.cache[:keep]
		default:
			s.dropCache()
		}
	}
	if len(s.cache) == 0 && first != s.last+1 && first <= s.last {
		// Overwriting older entries than the cache holds: start anew.
		s.dropCache()
	}
	for _, e := range ents {
		s.cache = append(s.cache, e)
		s.cacheBytes += proto.Size(e)
	}
	last := ents[len(ents)-1]
	s.last, s.lastTerm = last.GetIndex(), last.GetTerm()
	s.trimCache(entryCacheBytes)
}

// trimCache drops the oldest cached entries until the cache holds at most
// budget bytes.
func (s *groupStorage) trimCache(budget int) {
	n := 0
	for n < len(s.cache) && s.cacheBytes > budget {
		s.cacheBytes -= proto.Size(s.cache[n])
		n++
	}
	if n > 0 {
		clear(s.cache[:n])
		s.cache = s.cache[n:]
		if len(s.cache) == 0 {
			s.cache = nil
		}
	}
}

func (s *groupStorage) dropCache() { s.cache, s.cacheBytes = nil, 0 }

// setHardState records the persisted hard state.
func (s *groupStorage) setHardState(hs *eraftpb.HardState) {
	s.hs = proto.Clone(hs).(*eraftpb.HardState)
}

// applySnapshot records an installed snapshot: the log is empty after it.
func (s *groupStorage) applySnapshot(md *eraftpb.SnapshotMetadata) {
	s.first, s.truncTerm = md.GetIndex()+1, md.GetTerm()
	s.last, s.lastTerm = md.GetIndex(), md.GetTerm()
	s.dropCache()
	if s.hs == nil || s.hs.GetCommit() < md.GetIndex() {
		hs := &eraftpb.HardState{}
		if s.hs != nil {
			hs = proto.Clone(s.hs).(*eraftpb.HardState)
		}
		hs.Commit = new(md.GetIndex())
		if hs.GetTerm() < md.GetTerm() {
			hs.Term = new(md.GetTerm())
		}
		s.hs = hs
	}
}

// compact records that the log was truncated up to index to, whose term is
// term.
func (s *groupStorage) compact(to, term uint64) {
	if to < s.first {
		return
	}
	s.first, s.truncTerm = to+1, term
	if len(s.cache) > 0 && s.cache[0].GetIndex() <= to {
		n := int(min(to-s.cache[0].GetIndex()+1, uint64(len(s.cache))))
		for _, e := range s.cache[:n] {
			s.cacheBytes -= proto.Size(e)
		}
		clear(s.cache[:n])
		s.cache = s.cache[n:]
		if len(s.cache) == 0 {
			s.cache = nil
		}
	}
}

// releaseCache frees the cached entries (the group fell asleep: its
// followers hold the whole log).
func (s *groupStorage) releaseCache() { s.dropCache() }

// loadedGroup is what is read back for a group at start-up: its state, not
// its log (which stays on disk).
type loadedGroup struct {
	applied          appliedState
	hs               *eraftpb.HardState
	trunc, truncTerm uint64
	last, lastTerm   uint64
	exists           bool // any Raft state at all
}

// loadGroup reads a group's Raft state from pebble: the applied state, the
// truncation point, the hard state and the log's last entry. Entries past
// the commit index (the only ones a later leader may overwrite) are checked
// for gaps and for terms that decrease: such a log kept a tail an overwrite
// should have removed.
//
// A snapshot whose state was ingested but whose Raft state was not
// committed (the store stopped in between, snapstage.go) is finished first.
func loadGroup(db *pebble.DB, group uint64) (*loadedGroup, error) {
	return loadGroupWith(db, dbReader{db}, group)
}

// loadGroupWith is loadGroup reading through r (at start-up, iterators
// that move forward through every group in order).
func loadGroupWith(db *pebble.DB, r reader, group uint64) (*loadedGroup, error) {
	if wrote, err := finishInstall(db, r, group); err != nil {
		return nil, err
	} else if wrote {
		r = dbReader{db} // r may not see what was written
	}
	lg := &loadedGroup{applied: appliedState{conf: &eraftpb.ConfState{}}}
	if b, ok, err := r.get(keys.Applied(group)); err != nil {
		return nil, err
	} else if ok {
		if lg.applied, err = decodeApplied(b); err != nil {
			return nil, err
		}
		lg.exists = true
	}
	if b, ok, err := r.get(keys.Truncated(group)); err != nil {
		return nil, err
	} else if ok {
		if lg.trunc, lg.truncTerm, err = decodeIndexTerm(b); err != nil {
			return nil, err
		}
		lg.exists = true
	}
	if b, ok, err := r.get(keys.HardState(group)); err != nil {
		return nil, err
	} else if ok {
		hs := &eraftpb.HardState{}
		if err := proto.Unmarshal(b, hs); err != nil {
			return nil, fmt.Errorf("raftstore: group %d hard state: %w", group, err)
		}
		lg.hs = hs
		lg.exists = true
	}
	lg.last, lg.lastTerm = lg.trunc, lg.truncTerm
	// The tail from the commit index (or the truncation point) on.
	from := max(lg.trunc, lg.hs.GetCommit())
	if from > lg.trunc {
		b, ok, err := r.get(keys.LogEntry(group, from))
		if err != nil {
			return nil, err
		}
		if !ok {
			// The log ends below the commit index: a crash lost the tail of
			// an unsynced round that only moved the commit index. Read
			// from the truncation point.
			from = lg.trunc
		} else {
			e := &eraftpb.Entry{}
			if err := proto.Unmarshal(b, e); err != nil {
				return nil, fmt.Errorf("raftstore: group %d entry: %w", group, err)
			}
			lg.last, lg.lastTerm = e.GetIndex(), e.GetTerm()
			lg.exists = true
		}
	}
	next, term := from+1, lg.lastTerm
	if from == lg.trunc {
		term = lg.truncTerm
	}
	err := r.scan(keys.LogEntry(group, from+1), keys.PrefixEnd(keys.LogPrefix(group)), func(_, v []byte) error {
		e := &eraftpb.Entry{}
		if err := proto.Unmarshal(v, e); err != nil {
			return fmt.Errorf("raftstore: group %d entry: %w", group, err)
		}
		if e.GetIndex() != next {
			return fmt.Errorf("raftstore: group %d log has a gap: want index %d, found %d", group, next, e.GetIndex())
		}
		if e.GetTerm() < term {
			return fmt.Errorf("raftstore: group %d log: entry %d has term %d after term %d", group, e.GetIndex(), e.GetTerm(), term)
		}
		next, term = next+1, e.GetTerm()
		lg.last, lg.lastTerm = e.GetIndex(), e.GetTerm()
		lg.exists = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	return lg, nil
}

// finishInstall completes the install of a snapshot whose state is in
// place (its mark is above the applied index) but whose Raft state is not:
// applied index, truncation point, empty log, and a hard state whose
// commit index reaches the snapshot (its term and vote are kept).
//
// It reports whether it wrote: a reader opened before does not see it.
func finishInstall(db *pebble.DB, r reader, group uint64) (bool, error) {
	b, ok, err := r.get(keys.SnapshotMark(group))
	if err != nil || !ok {
		return false, err
	}
	mark, err := decodeApplied(b)
	if err != nil {
		return false, fmt.Errorf("raftstore: group %d snapshot mark: %w", group, err)
	}
	var applied uint64
	if ab, ok, err := r.get(keys.Applied(group)); err != nil {
		return false, err
	} else if ok {
		a, err := decodeApplied(ab)
		if err != nil {
			return false, err
		}
		applied = a.index
	}
	if mark.index <= applied {
		return false, nil
	}
	hs := &eraftpb.HardState{}
	if hb, ok, err := r.get(keys.HardState(group)); err != nil {
		return false, err
	} else if ok {
		if err := proto.Unmarshal(hb, hs); err != nil {
			return false, fmt.Errorf("raftstore: group %d hard state: %w", group, err)
		}
	}
	hs.Commit = new(max(hs.GetCommit(), mark.index))
	hs.Term = new(max(hs.GetTerm(), mark.term))
	hb, err := proto.Marshal(hs)
	if err != nil {
		return false, err
	}
	batch := db.NewBatch()
	defer batch.Close()
	md := &eraftpb.SnapshotMetadata{Index: new(mark.index), Term: new(mark.term), ConfState: mark.conf}
	if err := writeSnapshotRaftState(batch, group, md); err != nil {
		return false, err
	}
	if err := batch.Set(keys.HardState(group), hb, nil); err != nil {
		return false, err
	}
	if err := batch.Commit(pebble.Sync); err != nil {
		return false, fmt.Errorf("raftstore: group %d: finish a snapshot install: %w", group, err)
	}
	return true, nil
}

// bootstrapState is a group's first state with the given voters: as if
// initIndex entries had been applied, with an empty log. It is what
// writeBootstrap writes, as loadGroup would read it back.
func bootstrapState(voters []uint64) *loadedGroup {
	return &loadedGroup{
		applied: appliedState{index: initIndex, term: initTerm, conf: &eraftpb.ConfState{Voters: slices.Clone(voters)}},
		hs:      &eraftpb.HardState{Term: new(initTerm), Commit: new(initIndex)},
		trunc:   initIndex, truncTerm: initTerm,
		last: initIndex, lastTerm: initTerm,
		exists: true,
	}
}

// writeBootstrap writes a group's first state (bootstrapState) with the
// given voters. initial holds state machine keys and values to write with
// it.
func writeBootstrap(b *pebble.Batch, group uint64, voters []uint64, initial []KV) error {
	lg := bootstrapState(voters)
	ab, err := encodeApplied(lg.applied)
	if err != nil {
		return err
	}
	hs, err := proto.Marshal(lg.hs)
	if err != nil {
		return err
	}
	for _, op := range []struct{ k, v []byte }{
		{keys.Applied(group), ab},
		{keys.Truncated(group), encodeIndexTerm(lg.trunc, lg.truncTerm)},
		{keys.HardState(group), hs},
	} {
		if err := b.Set(op.k, op.v, nil); err != nil {
			return err
		}
	}
	for _, kv := range initial {
		if err := b.Set(kv.Key, kv.Value, nil); err != nil {
			return err
		}
	}
	return nil
}

// KV is a raw pebble key and value.
type KV struct {
	Key, Value []byte
}

// listGroups returns every group with Raft state in the DB.
func listGroups(db *pebble.DB) ([]uint64, error) {
	var out []uint64
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: keys.RaftGroupsStart(), UpperBound: keys.RaftGroupsEnd()})
	if err != nil {
		return nil, err
	}
	for valid := it.First(); valid; {
		g, ok := keys.GroupOfRaftKey(it.Key())
		if !ok {
			_ = it.Close()
			return nil, fmt.Errorf("raftstore: malformed raft key %q", it.Key())
		}
		out = append(out, g)
		valid = it.SeekGE(keys.RaftPrefix(g + 1))
	}
	return out, it.Close()
}
