package raftstore

// The contract between the Raft loop and a group's state machine.
//
// Apply writes only through the ApplyContext's batch, which the loop
// commits once per round with every group's applied index in it: the
// state and the index that describes it are never apart. An error from
// Apply, ApplyConfChange or Restore is a persistence or decode failure: the
// loop stops the store (OnFatal) and the entry is never counted as
// applied, so no replica silently diverges from the others.

import (
	"github.com/cockroachdb/pebble/v2"
	eraftpb "go.etcd.io/raft/v3/raftpb"
)

// StateMachine is a group's replicated state. Its methods run in the Raft
// loop; they must be deterministic and write only through ac.Batch.
type StateMachine interface {
	// Apply applies a committed command and returns the result handed to
	// the proposer (when the proposal was made on this store). An error
	// stops the store.
	Apply(ac *ApplyContext, index uint64, cmd []byte) (any, error)
	// ApplyConfChange is told about every applied membership change.
	ApplyConfChange(ac *ApplyContext, cc *eraftpb.ConfChange) error
	// Restore runs after a received snapshot's state keys were written to
	// ac.Batch (indexed, not yet committed, synced when it is): the state
	// machine reloads its state through the batch and stages there
	// whatever else the new state implies.
	Restore(ac *ApplyContext) error
}

// ApplyContext is the batch a round's committed entries (or a received
// snapshot) are written to, and what to do once it is committed.
type ApplyContext struct {
	// Batch is indexed: reads through it see the round's earlier writes.
	Batch   *pebble.Batch
	finally []func(committed bool)
}

// NewApplyContext returns a context over b. The loop makes one per round;
// tests of state machines make their own and call Done.
func NewApplyContext(b *pebble.Batch) *ApplyContext { return &ApplyContext{Batch: b} }

// AfterCommit runs f once the batch is committed, still in the loop, in the
// order registered. In-memory state that mirrors the DB is published
// there, so nobody reads a state that is not in the DB yet.
func (ac *ApplyContext) AfterCommit(f func()) {
	ac.finally = append(ac.finally, func(committed bool) {
		if committed {
			f()
		}
	})
}

// Finally runs f once the batch is committed (true) or dropped after a
// failure (false): for what must be released either way.
func (ac *ApplyContext) Finally(f func(committed bool)) { ac.finally = append(ac.finally, f) }

// Done runs the registered functions, in order, once.
func (ac *ApplyContext) Done(committed bool) {
	fs := ac.finally
	ac.finally = nil
	for _, f := range fs {
		f(committed)
	}
}
