package raftstore

// What Raft keeps of a group in pebble, and how it is loaded at start-up.
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

// groupStorage is raft.Storage for one group: the log lives in memory (as
// raft.MemoryStorage, loaded from pebble at start-up) and on disk. Its
// Snapshot is built on demand from the applied state, so the log can be
// truncated freely below the applied index.
type groupStorage struct {
	*raft.MemoryStorage
	snapshot func() (*eraftpb.Snapshot, error)
}

func (s *groupStorage) Snapshot() (*eraftpb.Snapshot, error) { return s.snapshot() }

// loadedGroup is everything read back for a group at start-up.
type loadedGroup struct {
	ms      *raft.MemoryStorage
	applied appliedState
	trunc   uint64
	exists  bool // any Raft state at all
}

// loadGroup reads a group's Raft state from pebble.
func loadGroup(db *pebble.DB, group uint64) (*loadedGroup, error) {
	lg := &loadedGroup{ms: raft.NewMemoryStorage(), applied: appliedState{conf: &eraftpb.ConfState{}}}
	if b, ok, err := kvread.Get(db, keys.Applied(group)); err != nil {
		return nil, err
	} else if ok {
		if lg.applied, err = decodeApplied(b); err != nil {
			return nil, err
		}
		lg.exists = true
	}
	var truncTerm uint64
	if b, ok, err := kvread.Get(db, keys.Truncated(group)); err != nil {
		return nil, err
	} else if ok {
		if lg.trunc, truncTerm, err = decodeIndexTerm(b); err != nil {
			return nil, err
		}
		lg.exists = true
	}
	if lg.trunc > 0 {
		snap := &eraftpb.Snapshot{Metadata: &eraftpb.SnapshotMetadata{
			Index: new(lg.trunc), Term: new(truncTerm), ConfState: lg.applied.conf,
		}}
		if err := lg.ms.ApplySnapshot(snap); err != nil {
			return nil, fmt.Errorf("raftstore: group %d: %w", group, err)
		}
	} else if len(lg.applied.conf.GetVoters()) > 0 {
		// The conf state must be visible through InitialState even if the
		// log was never truncated.
		if err := lg.ms.ApplySnapshot(&eraftpb.Snapshot{Metadata: &eraftpb.SnapshotMetadata{ConfState: lg.applied.conf}}); err != nil {
			return nil, err
		}
	}
	if b, ok, err := kvread.Get(db, keys.HardState(group)); err != nil {
		return nil, err
	} else if ok {
		hs := &eraftpb.HardState{}
		if err := proto.Unmarshal(b, hs); err != nil {
			return nil, fmt.Errorf("raftstore: group %d hard state: %w", group, err)
		}
		if err := lg.ms.SetHardState(hs); err != nil {
			return nil, err
		}
		lg.exists = true
	}
	it, err := db.NewIter(&pebble.IterOptions{
		LowerBound: keys.LogEntry(group, lg.trunc+1),
		UpperBound: keys.PrefixEnd(keys.LogPrefix(group)),
	})
	if err != nil {
		return nil, err
	}
	var ents []*eraftpb.Entry
	next, term := lg.trunc+1, truncTerm
	for it.First(); it.Valid(); it.Next() {
		e := &eraftpb.Entry{}
		if err := proto.Unmarshal(it.Value(), e); err != nil {
			_ = it.Close()
			return nil, fmt.Errorf("raftstore: group %d entry: %w", group, err)
		}
		if e.GetIndex() != next {
			_ = it.Close()
			return nil, fmt.Errorf("raftstore: group %d log has a gap: want index %d, found %d", group, next, e.GetIndex())
		}
		// Raft never appends an entry of an older term after a newer one: a
		// log whose terms decrease kept a tail an overwrite should have
		// removed.
		if e.GetTerm() < term {
			_ = it.Close()
			return nil, fmt.Errorf("raftstore: group %d log: entry %d has term %d after term %d", group, e.GetIndex(), e.GetTerm(), term)
		}
		next, term = next+1, e.GetTerm()
		ents = append(ents, e)
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	if err := lg.ms.Append(ents); err != nil {
		return nil, err
	}
	if len(ents) > 0 {
		lg.exists = true
	}
	return lg, nil
}

// writeBootstrap writes the first state of a group with the given voters:
// as if initIndex entries had been applied. initial holds state machine
// keys and values to write with it.
func writeBootstrap(b *pebble.Batch, group uint64, voters []uint64, initial []KV) error {
	cs := &eraftpb.ConfState{Voters: voters}
	ab, err := encodeApplied(appliedState{index: initIndex, term: initTerm, conf: cs})
	if err != nil {
		return err
	}
	hs, err := proto.Marshal(&eraftpb.HardState{Term: new(initTerm), Commit: new(initIndex)})
	if err != nil {
		return err
	}
	for _, op := range []struct{ k, v []byte }{
		{keys.Applied(group), ab},
		{keys.Truncated(group), encodeIndexTerm(initIndex, initTerm)},
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
