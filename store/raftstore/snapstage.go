package raftstore

// Receiving a snapshot without holding it in memory. The transport hands
// each chunk of a snapshot stream to a stage (StageSnapshot), which parses
// the records (snapshot.go's format) as they come and writes them, with the
// group's state prefix, into an SST file in Config.StagingDir. When the
// stream ends the MsgSnap is stepped with a token naming the stage instead
// of the data. The round that persists it ingests the file in place of the
// group's state (IngestAndExcise: the old state is removed and the new one
// added in one step), then commits the Raft state with the round's batch.
//
// Crash safety: the file also holds the group's snapshot mark
// (keys.SnapshotMark: the snapshot's index, term and configuration). If the
// store stops after the ingest and before the batch, the state is the
// snapshot's and the Raft state is older; loadGroup sees a mark above the
// applied index and finishes the install from it (applied index,
// truncation point, empty log, commit index), as the batch would have.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/store/keys"
)

// Bounds of one record of received snapshot data.
const (
	maxSnapshotKey   = 64 << 10
	maxSnapshotValue = 256 << 20
)

// A staged snapshot is named by a token in the MsgSnap's data.
func encodeStageToken(token uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte("rdbstage"), token)
}

func decodeStageToken(b []byte) (uint64, bool) {
	if len(b) != 16 || string(b[:8]) != "rdbstage" {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[8:]), true
}

// stagedSnapshot is a received snapshot's SST file, waiting to be
// installed.
type stagedSnapshot struct {
	group       uint64
	index, term uint64
	path        string
	bytes       uint64
	created     time.Time
}

// SnapshotStage receives one snapshot's data (transport.SnapshotStage).
type SnapshotStage struct {
	rs      *RaftStore
	group   uint64
	md      *eraftpb.SnapshotMetadata
	path    string
	f       vfs.File
	w       *sstable.Writer
	prefix  []byte
	carry   []byte
	lastKey []byte
	bytes   uint64
	done    bool
}

// StageSnapshot starts receiving the data of a snapshot of group with
// metadata md.
func (rs *RaftStore) StageSnapshot(group uint64, md *eraftpb.SnapshotMetadata) (*SnapshotStage, error) {
	if md == nil {
		return nil, errors.New("raftstore: snapshot without metadata")
	}
	if rs.cfg.StagingDir == "" {
		return nil, errors.New("raftstore: no staging directory for snapshots")
	}
	if err := rs.cfg.FS.MkdirAll(rs.cfg.StagingDir, 0o755); err != nil {
		return nil, err
	}
	rs.snapMu.Lock()
	rs.nextSnap++
	token := rs.nextSnap
	rs.snapMu.Unlock()
	path := filepath.Join(rs.cfg.StagingDir, fmt.Sprintf("%d-%d.sst", group, token))
	f, err := rs.cfg.FS.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, err
	}
	po := &pebble.Options{}
	po.EnsureDefaults()
	opts := po.MakeWriterOptions(0, rs.db.TableFormat())
	st := &SnapshotStage{rs: rs, group: group, md: proto.Clone(md).(*eraftpb.SnapshotMetadata), path: path, f: f,
		w: sstable.NewWriter(objstorageprovider.NewFileWritable(f), opts), prefix: keys.StatePrefix(group)}
	mark, err := encodeSnapshotMark(st.md)
	if err == nil {
		err = st.w.Set(keys.SnapshotMark(group), mark)
	}
	if err != nil {
		st.Abort()
		return nil, err
	}
	st.lastKey = keys.SnapshotMark(group)
	rs.stats.snapStaging.Add(1)
	return st, nil
}

// Write takes the next chunk of the snapshot's data.
func (st *SnapshotStage) Write(chunk []byte) error {
	st.bytes += uint64(len(chunk))
	st.rs.stats.snapBytes.Add(uint64(len(chunk)))
	data := chunk
	if len(st.carry) > 0 {
		st.carry = append(st.carry, chunk...)
		data = st.carry
	}
	for len(data) > 0 {
		k, v, n, err := nextRecord(data)
		if err != nil {
			return err
		}
		if n == 0 {
			break // the record goes on in the next chunk
		}
		if err := st.add(k, v); err != nil {
			return err
		}
		data = data[n:]
	}
	st.carry = append(st.carry[:0], data...)
	return nil
}

// nextRecord parses one record at the start of data: it returns n == 0 if
// data holds only part of it.
func nextRecord(data []byte) (k, v []byte, n int, err error) {
	kl, a := binary.Uvarint(data)
	if a == 0 {
		return nil, nil, 0, nil
	}
	if a < 0 || kl > maxSnapshotKey {
		return nil, nil, 0, errors.New("raftstore: snapshot data: bad key length")
	}
	if uint64(len(data)-a) < kl {
		return nil, nil, 0, nil
	}
	k = data[a : a+int(kl)]
	rest := data[a+int(kl):]
	vl, b := binary.Uvarint(rest)
	if b == 0 {
		return nil, nil, 0, nil
	}
	if b < 0 || vl > maxSnapshotValue {
		return nil, nil, 0, errors.New("raftstore: snapshot data: bad value length")
	}
	if uint64(len(rest)-b) < vl {
		return nil, nil, 0, nil
	}
	v = rest[b : b+int(vl)]
	return k, v, a + int(kl) + b + int(vl), nil
}

// add writes one record: its key (relative to the state prefix) must sort
// after the previous one. The sender's own snapshot mark is not data.
func (st *SnapshotStage) add(rel, v []byte) error {
	if len(rel) > 0 && rel[0] == 0 {
		if string(rel) == string(keys.SnapshotMarkSuffix) {
			return nil
		}
		return errors.New("raftstore: snapshot data: a key in the reserved range")
	}
	key := append(append(make([]byte, 0, len(st.prefix)+len(rel)), st.prefix...), rel...)
	if string(key) <= string(st.lastKey) {
		return errors.New("raftstore: snapshot data: keys out of order")
	}
	st.lastKey = key
	return st.w.Set(key, v)
}

// Finish ends the stage and returns the token the MsgSnap carries in
// place of the data.
func (st *SnapshotStage) Finish() ([]byte, error) {
	if len(st.carry) > 0 {
		st.Abort()
		return nil, errors.New("raftstore: snapshot data ends inside a record")
	}
	st.done = true
	err := st.w.Close() // closes the file
	st.rs.stats.snapStaging.Add(^uint64(0))
	if err != nil {
		_ = st.rs.cfg.FS.Remove(st.path)
		return nil, err
	}
	rs := st.rs
	rs.snapMu.Lock()
	rs.nextSnap++
	token := rs.nextSnap
	rs.staged[token] = &stagedSnapshot{group: st.group, index: st.md.GetIndex(), term: st.md.GetTerm(),
		path: st.path, bytes: st.bytes, created: time.Now()}
	rs.snapMu.Unlock()
	return encodeStageToken(token), nil
}

// Abort drops the stage and its file.
func (st *SnapshotStage) Abort() {
	if st.done {
		return
	}
	st.done = true
	st.rs.stats.snapStaging.Add(^uint64(0))
	_ = st.w.Close()
	_ = st.rs.cfg.FS.Remove(st.path)
}

// takeStaged removes and returns the staged snapshot a token names, if it
// is of group at index and term.
func (rs *RaftStore) takeStaged(data []byte, group, index, term uint64) (*stagedSnapshot, bool) {
	return rs.lookupStaged(data, group, index, term, true)
}

// hasStaged reports whether a token names a staged snapshot of group at
// index and term (intake rule 14).
func (rs *RaftStore) hasStaged(data []byte, group, index, term uint64) bool {
	_, ok := rs.lookupStaged(data, group, index, term, false)
	return ok
}

func (rs *RaftStore) lookupStaged(data []byte, group, index, term uint64, take bool) (*stagedSnapshot, bool) {
	token, ok := decodeStageToken(data)
	if !ok {
		return nil, false
	}
	rs.snapMu.Lock()
	defer rs.snapMu.Unlock()
	s := rs.staged[token]
	if s == nil || s.group != group || s.index != index || s.term != term {
		return nil, false
	}
	if take {
		delete(rs.staged, token)
	}
	return s, true
}

// encodeSnapshotMark is the value of keys.SnapshotMark: index, term and
// the configuration of the snapshot that wrote the state.
func encodeSnapshotMark(md *eraftpb.SnapshotMetadata) ([]byte, error) {
	return encodeApplied(appliedState{index: md.GetIndex(), term: md.GetTerm(), conf: md.GetConfState()})
}

// clearStaging removes the files a previous run left in the staging
// directory. Open only.
func (rs *RaftStore) clearStaging() error {
	if rs.cfg.StagingDir == "" {
		return nil
	}
	names, err := rs.cfg.FS.List(rs.cfg.StagingDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := rs.cfg.FS.Remove(filepath.Join(rs.cfg.StagingDir, n)); err != nil {
			return err
		}
	}
	return nil
}
