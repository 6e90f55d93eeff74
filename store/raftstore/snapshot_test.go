package raftstore

import (
	"bytes"
	"slices"
	"testing"

	eraftpb "go.etcd.io/raft/v3/raftpb"
)

func FuzzDecodeSnapshotData(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 'a', 1, 'b'})
	f.Add([]byte{200, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		kvs, err := decodeSnapshotData(7, data)
		if err != nil {
			return
		}
		for _, kv := range kvs {
			if !bytes.HasPrefix(kv.Key, []byte("s/")) {
				t.Fatalf("decoded key %q outside the state prefix", kv.Key)
			}
		}
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
