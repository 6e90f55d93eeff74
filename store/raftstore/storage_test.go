package raftstore

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/store/keys"
)

// TestGroupStorage: entries are read from the cache when it holds them
// and from pebble otherwise, alike; an overwrite replaces the tail; a
// compaction cuts the front; sizes are limited as raft asks.
func TestGroupStorage(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := &groupStorage{db: db, group: 7, first: 6, truncTerm: 5, last: 5, lastTerm: 5,
		owner: confOnly{&eraftpb.ConfState{Voters: []uint64{1}}}}
	write := func(ents []*eraftpb.Entry) {
		t.Helper()
		b := db.NewBatch()
		for _, e := range ents {
			data, _ := proto.Marshal(e)
			if err := b.Set(keys.LogEntry(7, e.GetIndex()), data, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
		s.append(ents)
	}
	mk := func(term, lo, hi uint64, size int) []*eraftpb.Entry {
		var out []*eraftpb.Entry
		for i := lo; i <= hi; i++ {
			out = append(out, &eraftpb.Entry{Index: new(i), Term: new(term), Data: bytes.Repeat([]byte{byte(i)}, size)})
		}
		return out
	}
	// 300 entries of 16 KiB: the cache keeps the newest 1 MiB only.
	write(mk(6, 6, 305, 16<<10))
	if s.cacheBytes > entryCacheBytes || len(s.cache) == 0 || s.cache[0].GetIndex() <= 6 {
		t.Fatalf("cache holds %d bytes from %d", s.cacheBytes, s.cache[0].GetIndex())
	}
	check := func(lo, hi uint64, term uint64) {
		t.Helper()
		ents, err := s.Entries(lo, hi, 1<<40)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(ents)) != hi-lo {
			t.Fatalf("Entries(%d, %d): %d entries", lo, hi, len(ents))
		}
		for i, e := range ents {
			if e.GetIndex() != lo+uint64(i) || e.GetTerm() != term || e.GetData()[0] != byte(lo+uint64(i)) {
				t.Fatalf("Entries(%d, %d)[%d] = index %d term %d", lo, hi, i, e.GetIndex(), e.GetTerm())
			}
		}
	}
	check(6, 306, 6)   // from disk, then the cache's part from disk too
	check(300, 306, 6) // from the cache
	if term, err := s.Term(10); err != nil || term != 6 {
		t.Fatalf("Term(10) = %d, %v", term, err)
	}
	if _, err := s.Term(4); err != raft.ErrCompacted {
		t.Fatalf("Term(4) = %v, want ErrCompacted", err)
	}
	if _, err := s.Term(306); err != raft.ErrUnavailable {
		t.Fatalf("Term(306) = %v, want ErrUnavailable", err)
	}
	// maxSize: at least one entry, then within the size.
	if ents, _ := s.Entries(6, 306, 1); len(ents) != 1 {
		t.Fatalf("Entries with maxSize 1: %d entries", len(ents))
	}
	if ents, _ := s.Entries(6, 306, 40<<10); len(ents) != 2 {
		t.Fatalf("Entries with maxSize 40 KiB: %d entries of 16 KiB", len(ents))
	}
	// An overwrite from 200 on, by a new term (the old tail is deleted by
	// writeEntries; here the new entries simply replace it).
	b := db.NewBatch()
	_ = b.DeleteRange(keys.LogEntry(7, 200), keys.PrefixEnd(keys.LogPrefix(7)), nil)
	_ = b.Commit(pebble.Sync)
	write(mk(7, 200, 210, 16))
	if s.last != 210 || s.lastTerm != 7 {
		t.Fatalf("after the overwrite: last %d term %d", s.last, s.lastTerm)
	}
	check(200, 211, 7)
	check(190, 200, 6)
	s.compact(100, 6)
	if _, err := s.Entries(100, 101, 1<<20); err != raft.ErrCompacted {
		t.Fatalf("Entries below the compaction: %v", err)
	}
	if term, _ := s.Term(100); term != 6 {
		t.Fatalf("Term at the compaction point = %d", term)
	}
	check(101, 110, 6)
	s.releaseCache()
	check(200, 211, 7)
}

// TestFollowerCatchesUpFromTheLogOnDisk: a follower cut off while 5 MiB
// are written (more than the cache keeps, less than a compaction) catches
// up from entries the leader reads back from pebble.
func TestFollowerCatchesUpFromTheLogOnDisk(t *testing.T) {
	n, nodes, leader := threeStores(t, func(c *Config) { c.CompactThreshold = 1 << 30 })
	lagging := (leader + 1) % 3
	n.mu.Lock()
	n.cut[uint64(lagging+1)] = true
	n.mu.Unlock()
	var last uint64
	val := bytes.Repeat([]byte("x"), 16<<10)
	for i := range 320 {
		v, err := nodes[leader].rs.ProposeRetrying(ctxT(t, 5*time.Second), 7, append([]byte(fmt.Sprintf("k%d=", i)), val...))
		if err != nil {
			t.Fatal(err)
		}
		last = v.(uint64)
	}
	n.mu.Lock()
	n.cut[uint64(lagging+1)] = false
	n.mu.Unlock()
	eventually(t, 20*time.Second, func() error {
		if st, _ := nodes[lagging].rs.Status(7); st.Applied < last {
			return fmt.Errorf("applied %d of %d", st.Applied, last)
		}
		return nil
	})
	if st, _ := nodes[lagging].rs.Status(7); st.SnapshotsApplied != 0 {
		t.Fatalf("caught up by snapshot, not from the log")
	}
}

// confOnly is a storageOwner with a configuration and no snapshot.
type confOnly struct{ cs *eraftpb.ConfState }

func (o confOnly) appliedConf() *eraftpb.ConfState { return o.cs }
func (o confOnly) makeSnapshot() (*eraftpb.Snapshot, error) {
	return nil, raft.ErrSnapshotTemporarilyUnavailable
}
