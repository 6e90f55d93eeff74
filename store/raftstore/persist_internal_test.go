package raftstore

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/store/keys"
)

type nopSM struct{}

func (nopSM) Apply(*ApplyContext, uint64, []byte) (any, error)         { return nil, nil }
func (nopSM) ApplyConfChange(*ApplyContext, *eraftpb.ConfChange) error { return nil }
func (nopSM) Restore(*ApplyContext) error                              { return nil }

func ents(term uint64, from, to uint64) []*eraftpb.Entry {
	var out []*eraftpb.Entry
	for i := from; i <= to; i++ {
		out = append(out, &eraftpb.Entry{Index: new(i), Term: new(term), Type: eraftpb.EntryNormal.Enum()})
	}
	return out
}

// TestSnapshotWithEntriesThenOverwrite: a Ready carrying a snapshot and
// entries after it, then a Ready that overwrites part of those entries
// with a later term, leaves exactly the new log on disk.
func TestSnapshotWithEntriesThenOverwrite(t *testing.T) {
	fs := vfs.NewMem()
	db, err := pebble.Open("", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := Open(Config{StoreID: 1, DB: db, FS: fs, StagingDir: "staging", NewStateMachine: func(uint64) (StateMachine, error) { return nopSM{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	g, err := rs.openGroup(7)
	if err != nil {
		t.Fatal(err)
	}
	md := &eraftpb.SnapshotMetadata{Index: new(uint64(10)), Term: new(uint64(2)), ConfState: &eraftpb.ConfState{Voters: []uint64{1, 2, 3}}}
	stage, err := rs.StageSnapshot(7, md)
	if err != nil {
		t.Fatal(err)
	}
	token, err := stage.Finish()
	if err != nil {
		t.Fatal(err)
	}
	snap := &eraftpb.Snapshot{Metadata: md, Data: token}
	rd1 := raft.Ready{Snapshot: snap, Entries: ents(2, 11, 15), HardState: &eraftpb.HardState{Term: new(uint64(2)), Commit: new(uint64(10))}, MustSync: true}
	if err := rs.persist([]*ready{{g: g, rd: rd1}}); err != nil {
		t.Fatal(err)
	}
	rd2 := raft.Ready{Entries: ents(3, 13, 13), HardState: &eraftpb.HardState{Term: new(uint64(3)), Commit: new(uint64(10))}, MustSync: true}
	if err := rs.persist([]*ready{{g: g, rd: rd2}}); err != nil {
		t.Fatal(err)
	}
	lg, err := loadGroup(db, 7)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if last := lg.last; last != 13 {
		t.Fatalf("log on disk ends at %d, want 13: entries of term 2 after the overwrite survived", last)
	}
	st := &groupStorage{db: db, group: 7, first: lg.trunc + 1, truncTerm: lg.truncTerm, last: lg.last, lastTerm: lg.lastTerm}
	for i := uint64(11); i <= 13; i++ {
		term, _ := st.Term(i)
		want := uint64(2)
		if i == 13 {
			want = 3
		}
		if term != want {
			t.Errorf("entry %d has term %d, want %d", i, term, want)
		}
	}
}

// TestSnapshotIngestedWithoutRaftState: the store stops after a received
// snapshot's state was ingested and before the round's batch committed
// its Raft state. Loading the group finishes the install from the
// snapshot's mark: applied index, truncation point, empty log, a commit
// index that reaches it, and the term and vote kept.
func TestSnapshotIngestedWithoutRaftState(t *testing.T) {
	fs := vfs.NewMem()
	db, err := pebble.Open("", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := Open(Config{StoreID: 1, DB: db, FS: fs, StagingDir: "staging", NewStateMachine: func(uint64) (StateMachine, error) { return nopSM{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	// An old log and hard state (term 3, vote for store 2).
	b := db.NewBatch()
	for _, e := range ents(1, 1, 4) {
		data, _ := proto.Marshal(e)
		_ = b.Set(keys.LogEntry(7, e.GetIndex()), data, nil)
	}
	hs, _ := proto.Marshal(&eraftpb.HardState{Term: new(uint64(3)), Vote: new(uint64(2)), Commit: new(uint64(4))})
	_ = b.Set(keys.HardState(7), hs, nil)
	_ = b.Set(append(keys.StatePrefix(7), "k/old"...), []byte("old"), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	g, err := rs.openGroup(7)
	if err != nil {
		t.Fatal(err)
	}
	md := &eraftpb.SnapshotMetadata{Index: new(uint64(10)), Term: new(uint64(2)), ConfState: &eraftpb.ConfState{Voters: []uint64{1, 2, 3}}}
	stage, err := rs.StageSnapshot(7, md)
	if err != nil {
		t.Fatal(err)
	}
	rec := binary.AppendUvarint(nil, 5)
	rec = append(rec, "k/new"...)
	rec = binary.AppendUvarint(rec, 3)
	rec = append(rec, "new"...)
	if err := stage.Write(rec); err != nil {
		t.Fatal(err)
	}
	token, err := stage.Finish()
	if err != nil {
		t.Fatal(err)
	}
	batch := db.NewIndexedBatch()
	if err := g.writeSnapshot(batch, &eraftpb.Snapshot{Metadata: md, Data: token}); err != nil {
		t.Fatal(err)
	}
	_ = batch.Close() // the store stops before the batch commits
	if _, closer, err := db.Get(append(keys.StatePrefix(7), "k/old"...)); err == nil {
		_ = closer.Close()
		t.Fatal("the old state survived the ingest")
	}
	lg, err := loadGroup(db, 7)
	if err != nil {
		t.Fatal(err)
	}
	if lg.applied.index != 10 || lg.trunc != 10 || lg.last != 10 || lg.hs.GetCommit() != 10 || lg.hs.GetTerm() != 3 || lg.hs.GetVote() != 2 ||
		!slices.Equal(lg.applied.conf.GetVoters(), []uint64{1, 2, 3}) {
		t.Fatalf("after the restart: applied %d trunc %d last %d hs %v conf %v", lg.applied.index, lg.trunc, lg.last, lg.hs, lg.applied.conf)
	}
	v, closer, err := db.Get(append(keys.StatePrefix(7), "k/new"...))
	if err != nil || string(v) != "new" {
		t.Fatalf("the snapshot's state: %q, %v", v, err)
	}
	_ = closer.Close()
}
