package raftstore

import (
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	eraftpb "go.etcd.io/raft/v3/raftpb"
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
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := Open(Config{StoreID: 1, DB: db, NewStateMachine: func(uint64) (StateMachine, error) { return nopSM{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	g, err := rs.openGroup(7)
	if err != nil {
		t.Fatal(err)
	}
	snap := &eraftpb.Snapshot{Metadata: &eraftpb.SnapshotMetadata{Index: new(uint64(10)), Term: new(uint64(2)),
		ConfState: &eraftpb.ConfState{Voters: []uint64{1, 2, 3}}}}
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
