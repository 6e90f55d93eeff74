package raftstore

import (
	"bytes"
	"testing"
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
