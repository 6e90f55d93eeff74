package raftstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	eraftpb "go.etcd.io/raft/v3/raftpb"

	"github.com/rdb-project/rdb/store/keys"
)

// FuzzStageSnapshot: snapshot data from the network, in chunks cut
// anywhere, never panics the stage; what it accepts is ingested as the
// group's state alone, in order, with the snapshot's mark.
func FuzzStageSnapshot(f *testing.F) {
	rec := func(k, v string) []byte {
		b := binary.AppendUvarint(nil, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(v)))
		return append(b, v...)
	}
	f.Add(append(rec("k/a", "1"), rec("k/b", "2")...), uint8(3))
	f.Add([]byte{}, uint8(0))
	f.Add([]byte{200, 1}, uint8(1))
	f.Add(append(rec("k/b", "1"), rec("k/a", "2")...), uint8(5))
	f.Add(rec("\x00snap", "x"), uint8(2))
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	rs, err := Open(Config{StoreID: 1, DB: db, FS: vfs.NewMem(), StagingDir: "staging", Transport: nopTransport{},
		NewStateMachine: func(uint64) (StateMachine, error) { return nopSM{}, nil }})
	if err != nil {
		f.Fatal(err)
	}
	md := &eraftpb.SnapshotMetadata{Index: new(uint64(9)), Term: new(uint64(2)), ConfState: &eraftpb.ConfState{Voters: []uint64{1}}}
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		st, err := rs.StageSnapshot(7, md)
		if err != nil {
			t.Fatal(err)
		}
		step := int(cut)%7 + 1
		for i := 0; i < len(data); i += step {
			if err := st.Write(data[i:min(i+step, len(data))]); err != nil {
				st.Abort()
				return
			}
		}
		token, err := st.Finish()
		if err != nil {
			return
		}
		staged, ok := rs.takeStaged(token, 7, 9, 2)
		if !ok {
			t.Fatal("finished stage not registered")
		}
		f, err := rs.cfg.FS.Open(staged.path)
		if err != nil {
			t.Fatal(err)
		}
		rd, err := sstable.NewSimpleReadable(f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := sstable.NewReader(context.Background(), rd, sstable.ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		it, err := r.NewIter(sstable.NoTransforms, nil, nil, sstable.AssertNoBlobHandles)
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		var prev []byte
		n := 0
		for kv := it.First(); kv != nil; kv = it.Next() {
			k := kv.K.UserKey
			if !bytes.HasPrefix(k, keys.StatePrefix(7)) || (prev != nil && bytes.Compare(prev, k) >= 0) {
				t.Fatalf("staged key %q (after %q)", k, prev)
			}
			if n == 0 && !bytes.Equal(k, keys.SnapshotMark(7)) {
				t.Fatalf("first staged key %q, want the mark", k)
			}
			prev = append(prev[:0], k...)
			n++
		}
		_ = rs.cfg.FS.Remove(staged.path)
	})
}

// FuzzDecodeApplied: the applied state read from disk never panics, and
// what decodes encodes back to the same index, term and voters.
func FuzzDecodeApplied(f *testing.F) {
	b, _ := encodeApplied(appliedState{index: 9, term: 3, conf: &eraftpb.ConfState{Voters: []uint64{1, 2, 3}}})
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decodeApplied(b)
		if err != nil {
			return
		}
		again, err := encodeApplied(a)
		if err != nil {
			t.Fatal(err)
		}
		a2, err := decodeApplied(again)
		if err != nil || a2.index != a.index || a2.term != a.term || !slices.Equal(a2.conf.GetVoters(), a.conf.GetVoters()) {
			t.Fatalf("round trip: %+v -> %+v (%v)", a, a2, err)
		}
	})
}
