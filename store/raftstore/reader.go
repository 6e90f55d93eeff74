package raftstore

import (
	"bytes"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rdb-project/rdb/store/keys"
	"github.com/rdb-project/rdb/store/kvread"
)

// reader reads a group's Raft state: single keys, and the log's tail.
type reader interface {
	get(key []byte) ([]byte, bool, error)
	// scan calls fn for every key in [lower, upper), in order; fn's
	// arguments are valid only during the call.
	scan(lower, upper []byte, fn func(k, v []byte) error) error
}

// dbReader reads straight from the DB.
type dbReader struct{ db *pebble.DB }

func (r dbReader) get(key []byte) ([]byte, bool, error) { return kvread.Get(r.db, key) }

func (r dbReader) scan(lower, upper []byte, fn func(k, v []byte) error) error {
	return kvread.Scan(r.db, lower, upper, fn)
}

// startReader reads the state of every group at start-up, in group order,
// through two iterators kept open (one over the Raft keys, one over the
// state machines'). 100,000 point reads each set up their own iterator
// through every level of the LSM, and read and decompress the same blocks
// again and again; an iterator moving forward reads each block once.
type startReader struct {
	raft, state *pebble.Iterator
}

func newStartReader(db *pebble.DB) (*startReader, error) {
	raft, err := db.NewIter(&pebble.IterOptions{LowerBound: keys.RaftGroupsStart(), UpperBound: keys.RaftGroupsEnd()})
	if err != nil {
		return nil, err
	}
	state, err := db.NewIter(nil)
	if err != nil {
		_ = raft.Close()
		return nil, err
	}
	return &startReader{raft: raft, state: state}, nil
}

func (r *startReader) close() error {
	err := r.raft.Close()
	if err2 := r.state.Close(); err == nil {
		err = err2
	}
	return err
}

func (r *startReader) iter(key []byte) *pebble.Iterator {
	if bytes.HasPrefix(key, keys.RaftGroupsStart()) {
		return r.raft
	}
	return r.state
}

func (r *startReader) get(key []byte) ([]byte, bool, error) { return kvread.SeekGet(r.iter(key), key) }

func (r *startReader) scan(lower, upper []byte, fn func(k, v []byte) error) error {
	it := r.iter(lower)
	for valid := it.SeekGE(lower); valid && bytes.Compare(it.Key(), upper) < 0; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err == nil {
			err = fn(it.Key(), v)
		}
		if err != nil {
			return err
		}
	}
	return it.Error()
}
