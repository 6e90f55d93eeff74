package raftstore

// Snapshots are built on demand, from a pebble snapshot taken in the Raft
// loop at the group's applied index, so they always describe exactly the
// state after the applied entry. The MsgSnap that Raft emits carries only a
// token; the transport streams the data from the pebble snapshot, and the
// receiver stages it into an SST file as it comes (snapstage.go) before
// stepping the message with a token of its own.
//
// Data format: a sequence of (uvarint key length, key relative to the
// group's s/<g>/ prefix, uvarint value length, value).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rdb-project/rdb/store/keys"
)

const snapshotChunkBytes = 1 << 20

type pendingSnapshot struct {
	group   uint64
	snap    *pebble.Snapshot
	created time.Time
}

func encodeSnapshotToken(token uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte("rdbsnap:"), token)
}

func decodeSnapshotToken(b []byte) (uint64, bool) {
	if len(b) != 16 || string(b[:8]) != "rdbsnap:" {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[8:]), true
}

// StreamSnapshot emits the data of the snapshot a MsgSnap refers to, in
// chunks, and releases it. The transport calls it once per MsgSnap, even
// when it cannot send (with a fn that fails), so nothing is leaked.
func (rs *RaftStore) StreamSnapshot(data []byte, fn func(chunk []byte) error) error {
	token, ok := decodeSnapshotToken(data)
	if !ok {
		return errors.New("raftstore: MsgSnap without a snapshot token")
	}
	rs.snapMu.Lock()
	ps := rs.snaps[token]
	delete(rs.snaps, token)
	rs.snapMu.Unlock()
	if ps == nil {
		return fmt.Errorf("raftstore: snapshot %d is gone", token)
	}
	defer ps.snap.Close()
	prefix := keys.StatePrefix(ps.group)
	it, err := ps.snap.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: keys.PrefixEnd(prefix)})
	if err != nil {
		return err
	}
	buf := make([]byte, 0, snapshotChunkBytes+64)
	mark := keys.SnapshotMark(ps.group)
	for it.First(); it.Valid(); it.Next() {
		if string(it.Key()) == string(mark) {
			continue // the receiver writes its own
		}
		k := it.Key()[len(prefix):]
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		buf = binary.AppendUvarint(buf, uint64(len(k)))
		buf = append(buf, k...)
		buf = binary.AppendUvarint(buf, uint64(len(v)))
		buf = append(buf, v...)
		if len(buf) >= snapshotChunkBytes {
			if err := fn(buf); err != nil {
				_ = it.Close()
				return err
			}
			buf = buf[:0]
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	// Always send a final chunk, even an empty one, so that the receiver
	// knows the data is complete.
	return fn(buf)
}

// gcSnapshots releases snapshots that were never streamed.
func (rs *RaftStore) gcSnapshots(now time.Time) {
	rs.snapMu.Lock()
	defer rs.snapMu.Unlock()
	for t, ps := range rs.snaps {
		if now.Sub(ps.created) > 10*time.Minute {
			_ = ps.snap.Close()
			delete(rs.snaps, t)
		}
	}
	for t, s := range rs.staged {
		if now.Sub(s.created) > 10*time.Minute {
			_ = rs.cfg.FS.Remove(s.path)
			delete(rs.staged, t)
		}
	}
}
