package raftstore

// What callers outside the loop ask of a group: proposals, membership
// changes and linearizable reads. Each is posted to the loop and waited
// for. A caller always learns whether its proposal was handed to Raft: an
// error before that (no leader, no group, the store stopping, its own
// deadline) means nothing was proposed and a retry is safe; after it, only
// the proposer's apply can say what happened, and a caller that stops
// waiting gets ErrOutcomeUnknown.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	eraftpb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/store/api"
)

// Errors returned to callers of Propose and ReadIndex. ErrNoLeader,
// ErrGroupNotFound and ErrStopped (alone) mean nothing was proposed.
var (
	ErrNoLeader      = errors.New("raftstore: group has no leader")
	ErrGroupNotFound = errors.New("raftstore: no such group on this store")
	ErrStopped       = errors.New("raftstore: stopped")
	// ErrOutcomeUnknown wraps why a caller stopped waiting for a proposal
	// that was handed to Raft: it may still be applied.
	ErrOutcomeUnknown = errors.New("raftstore: proposed, outcome unknown")
)

type result struct {
	val any
	err error
}

// The life of a proposal, as its waiter sees it.
const (
	pending   int32 = iota // posted to the loop, not handed to Raft
	proposed               // handed to Raft: it may be applied
	abandoned              // the caller stopped waiting first: never proposed
)

type waiter struct {
	ch    chan result
	state atomic.Int32
}

func (rs *RaftStore) newRequestID() uint64 { return rs.reqSeq.Add(1) }

func (rs *RaftStore) addWaiter(id uint64) *waiter {
	w := &waiter{ch: make(chan result, 1)}
	rs.waitMu.Lock()
	rs.waiters[id] = w
	rs.waitMu.Unlock()
	return w
}

func (rs *RaftStore) removeWaiter(id uint64) {
	rs.waitMu.Lock()
	delete(rs.waiters, id)
	rs.waitMu.Unlock()
}

// deliver hands a result to the caller waiting for request id, if any.
func (rs *RaftStore) deliver(id uint64, r result) {
	rs.waitMu.Lock()
	w := rs.waiters[id]
	delete(rs.waiters, id)
	rs.waitMu.Unlock()
	if w != nil {
		w.ch <- r
	}
}

// wait waits for w's result. A caller that stops waiting before the loop
// proposed its request abandons it (the loop will not propose it); one
// that stops after learns that the outcome is unknown.
func (rs *RaftStore) wait(ctx context.Context, w *waiter) (any, error) {
	var cause error
	select {
	case r := <-w.ch:
		return r.val, r.err
	case <-ctx.Done():
		cause = ctx.Err()
	case <-rs.stopc:
		cause = ErrStopped
	case <-rs.donec:
		cause = ErrStopped
	}
	if w.state.CompareAndSwap(pending, abandoned) {
		return nil, cause
	}
	return nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, cause)
}

// propose posts a request that the loop hands to Raft with hand, and waits
// for its result. The loop first checks there is a group with a leader
// (else nothing is proposed), then marks the request proposed, unless the
// caller has already given up on it.
func (rs *RaftStore) propose(ctx context.Context, gid, id uint64, hand func(g *group) error) (any, error) {
	w := rs.addWaiter(id)
	defer rs.removeWaiter(id)
	rs.post(func() {
		g := rs.groups[gid]
		if g != nil {
			// A sleeping replica that knows no leader (since start-up)
			// finds one once awake: the caller retries.
			rs.use(g)
		}
		switch {
		case g == nil:
			rs.deliver(id, result{err: ErrGroupNotFound})
			return
		case g.lead == raft.None:
			rs.deliver(id, result{err: ErrNoLeader})
			return
		}
		if !w.state.CompareAndSwap(pending, proposed) {
			return // abandoned
		}
		if err := hand(g); err != nil {
			// Dropped before it was appended anywhere: not proposed.
			w.state.Store(pending)
			rs.deliver(id, result{err: fmt.Errorf("%w: %v", ErrNoLeader, err)})
		}
	})
	return rs.wait(ctx, w)
}

// Propose replicates cmd through the group and returns what its state
// machine's Apply returned, once applied on this store.
func (rs *RaftStore) Propose(ctx context.Context, gid uint64, cmd []byte) (any, error) {
	id := rs.newRequestID()
	data := frame(rs.cfg.StoreID, id, cmd)
	return rs.propose(ctx, gid, id, func(g *group) error { return g.rn.Propose(data) })
}

// ProposeConfChange proposes a membership change and waits until it is
// applied on this store.
func (rs *RaftStore) ProposeConfChange(ctx context.Context, gid uint64, cc *eraftpb.ConfChange) error {
	id := rs.newRequestID()
	cc.Id = new(id)
	_, err := rs.propose(ctx, gid, id, func(g *group) error { return g.rn.ProposeConfChange(cc) })
	return err
}

// ReadIndex returns once this store has applied every entry committed
// before the call: reads of the state machine after it are linearizable.
func (rs *RaftStore) ReadIndex(ctx context.Context, group uint64) error {
	w := &readWaiter{ch: make(chan error, 1)}
	rs.post(func() {
		g := rs.groups[group]
		if g == nil {
			w.ch <- ErrGroupNotFound
			return
		}
		g.pendingReads = append(g.pendingReads, w)
		rs.use(g)
	})
	select {
	case err := <-w.ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-rs.donec:
		return ErrStopped
	}
}

// issueReads sends one ReadIndex per group for every read that arrived
// this round. Each attempt gets a new request id (a reused one can match a
// stale ReadState after a pause).
func (rs *RaftStore) issueReads() {
	for _, g := range rs.dirty { // a read wakes its group

		if len(g.pendingReads) == 0 {
			continue
		}
		if g.lead == raft.None {
			for _, w := range g.pendingReads {
				w.ch <- ErrNoLeader
			}
			g.pendingReads = nil
			continue
		}
		rs.readSeq++
		ctx := binary.BigEndian.AppendUint64(nil, rs.readSeq)
		if g.reads == nil {
			g.reads = make(map[string]*readBatch)
		}
		g.reads[string(ctx)] = &readBatch{waiters: g.pendingReads, sent: time.Now()}
		rs.stats.readIndexes.Add(1)
		rs.stats.reads.Add(uint64(len(g.pendingReads)))
		g.pendingReads = nil
		g.rn.ReadIndex(ctx)
	}
}

// Campaign makes this store's replica of group start an election.
func (rs *RaftStore) Campaign(group uint64) {
	rs.post(func() {
		if g := rs.groups[group]; g != nil {
			rs.wake(g)
			_ = g.rn.Campaign()
		}
	})
}

// retryBackoff is the pause between attempts while a group elects a leader
// (or a new group's replica is being created here).
const retryBackoff = 20 * time.Millisecond

// notYet reports whether err means the group cannot take requests yet.
func notYet(err error) bool {
	return errors.Is(err, ErrNoLeader) || errors.Is(err, ErrGroupNotFound)
}

// sleep waits for d or until ctx ends; it reports whether to go on.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ProposeRetrying is Propose, tried again while the group has no leader
// yet (a new group is electing one), until ctx ends.
func (rs *RaftStore) ProposeRetrying(ctx context.Context, group uint64, cmd []byte) (any, error) {
	for {
		v, err := rs.Propose(ctx, group, cmd)
		if err == nil || !notYet(err) || !sleep(ctx, retryBackoff) {
			return v, err
		}
	}
}

// ProposeFramedRetrying is ProposeRetrying for a command that follows
// FrameSize free bytes in buf: the frame is written there, and buf itself
// is proposed (a large value is not copied once more). buf belongs to
// Raft from then on. Each attempt frames buf anew: an attempt that fails
// with no leader or no group handed nothing to Raft.
func (rs *RaftStore) ProposeFramedRetrying(ctx context.Context, gid uint64, buf []byte) (any, error) {
	if len(buf) < FrameSize {
		return nil, fmt.Errorf("raftstore: a framed command of %d bytes has no room for its frame", len(buf))
	}
	for {
		id := rs.newRequestID()
		putFrame(buf, rs.cfg.StoreID, id)
		v, err := rs.propose(ctx, gid, id, func(g *group) error { return g.rn.Propose(buf) })
		if err == nil || !notYet(err) || !sleep(ctx, retryBackoff) {
			return v, err
		}
	}
}

// ReadIndexRetrying is ReadIndex, tried again while the group has no
// leader yet, until ctx ends.
func (rs *RaftStore) ReadIndexRetrying(ctx context.Context, group uint64) error {
	for {
		err := rs.ReadIndex(ctx, group)
		if err == nil || !notYet(err) || !sleep(ctx, retryBackoff) {
			return err
		}
	}
}

// WriteError turns the error of a proposal into a client answer: whether
// the write was applied is unknown only if it was proposed.
func WriteError(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case status.Code(err) != codes.Unknown:
		return err
	case errors.Is(err, ErrOutcomeUnknown):
		switch {
		case errors.Is(err, ErrStopped):
			return api.ErrStoppedUnknown
		case errors.Is(err, context.Canceled):
			return status.Error(codes.Canceled, "request cancelled; the write may have been applied")
		}
		return api.ErrTimeout(what)
	}
	return notApplied(err, what, api.ErrNotProposed)
}

// ReadError turns the error of a ReadIndex into a client answer.
func ReadError(err error, what string) error {
	if err == nil || status.Code(err) != codes.Unknown {
		return err
	}
	return notApplied(err, what, api.ErrReadTimeout)
}

func notApplied(err error, what string, timeout func(string) error) error {
	switch {
	case errors.Is(err, ErrStopped):
		return api.ErrStopping
	case notYet(err):
		return api.ErrNoLeader(what)
	case errors.Is(err, context.DeadlineExceeded):
		return timeout(what)
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	}
	return api.Internal("%s: %v", what, err)
}
