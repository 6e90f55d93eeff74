// Package namespace owns what a namespace is, for every part of rdb that
// decides about one: its Mode, the one rule that turns a request into the
// namespace's next table row (Next), and the one decision whether a store
// may serve a call on it (Decide), from the row it holds and the state of
// its replica of the namespace's Raft group.
//
// The rules here are pure: the static meta group, the placement driver and
// the store's services call them, and none of them depends on storage, so
// the placement driver uses them without linking the store's engines.
package namespace

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/api"
)

// Mode is a namespace's consistency, as it appears on the wire and in rows.
type Mode string

const (
	// Strong: a Raft group; compare-and-swap and linearizable reads.
	Strong Mode = "strong"
	// Eventual: any store accepts writes; last writer wins.
	Eventual Mode = "eventual"
	// DefaultMode is the mode of a namespace nobody configured.
	DefaultMode = Strong
)

// Default is the namespace that always exists: strong unless relaxed.
const Default = "default"

// ParseMode parses a mode a client, a flag or a peer gave; the error is an
// InvalidArgument a person can act on.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case Strong, Eventual:
		return Mode(s), nil
	case "":
		return "", status.Error(codes.InvalidArgument, `mode is empty: use "strong" or "eventual"`)
	}
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return "", status.Errorf(codes.InvalidArgument, "unknown mode %q: use \"strong\" or \"eventual\"", s)
}

// ModeOf returns a row's mode.
func ModeOf(rec *storepb.NamespaceRecord) Mode { return Mode(rec.GetMode()) }

// State is how far a store has carried out its row of a namespace, as
// GetMode and ListNamespaceModes report it.
type State string

const (
	// Active: the store serves the namespace in its row's mode.
	Active State = "active"
	// Switching: the store is carrying out a switch to the row's mode.
	Switching State = "switching"
)

// GroupActive reports whether a namespace group serves strong operations:
// its last activation is more recent than its last fence. A nil state (no
// replica here) is not active.
func GroupActive(gs *storepb.GroupState) bool {
	return gs != nil && gs.GetActiveEpoch() > gs.GetFencedEpoch()
}

// GroupFenced reports whether a namespace group has applied the fence of
// epoch (or a later one): every replica that applied it has converted the
// strong state into LWW records.
func GroupFenced(gs *storepb.GroupState, epoch uint64) bool {
	return gs != nil && gs.GetFencedEpoch() >= epoch
}

// SetRequest asks to set a namespace's mode.
type SetRequest struct {
	Mode Mode
	// Force lets a switch to strong go ahead without stores that cannot be
	// reached (their unreplicated eventual writes are lost).
	Force bool
	// OnlyIfAbsent creates the namespace and leaves an existing one as it
	// is (a store's --namespace-mode seed).
	OnlyIfAbsent bool
	// FromDefault marks a namespace created because a client named it.
	FromDefault bool
}

// Next is the one rule for a namespace's next row. cur is its row (nil if
// it does not exist; Next never modifies it). It returns the next row and
// true, or cur and false when the request changes nothing, so that a
// request can be retried freely:
//
//   - a new namespace gets the requested mode at epoch 1;
//   - a seed (OnlyIfAbsent) changes only a namespace that does not exist or
//     was created in the default mode, never one somebody configured;
//   - setting the mode a configured namespace already has changes nothing,
//     except that it may turn force on for a switch still rolling out;
//   - a mode change bumps the epoch (every switch has its own) and records
//     force; configuring a namespace created from the default is a change
//     of from_default only.
//
// The caller sets the version (the index or revision that writes the row)
// and gives a row that becomes strong its group (NeedsGroup).
func Next(cur *storepb.NamespaceRecord, name string, req SetRequest) (*storepb.NamespaceRecord, bool) {
	if cur == nil {
		return &storepb.NamespaceRecord{Name: name, Mode: string(req.Mode), FromDefault: req.FromDefault, Epoch: 1}, true
	}
	if req.FromDefault {
		return cur, false
	}
	// A seed (--namespace-mode) configures a namespace nobody configured:
	// one that does not exist, or one a call created in the default mode
	// before the seed got there.
	if req.OnlyIfAbsent && !cur.GetFromDefault() {
		return cur, false
	}
	if ModeOf(cur) == req.Mode && !cur.GetFromDefault() && (cur.GetForce() || !req.Force) {
		return cur, false
	}
	next := &storepb.NamespaceRecord{
		Name: cur.GetName(), Mode: cur.GetMode(), Epoch: cur.GetEpoch(), Version: cur.GetVersion(),
		GroupId: cur.GetGroupId(), GroupPeers: append([]uint64(nil), cur.GetGroupPeers()...),
		Replicas: append([]uint64(nil), cur.GetReplicas()...), ReplicationFactor: cur.GetReplicationFactor(),
		Force: req.Force,
	}
	if ModeOf(cur) != req.Mode {
		next.Mode = string(req.Mode)
		next.Epoch++
	}
	return next, true
}

// NeedsGroup reports whether a row needs a Raft group id: it is strong and
// was never given one (a namespace keeps its group across switches).
func NeedsGroup(rec *storepb.NamespaceRecord) bool {
	return ModeOf(rec) == Strong && rec.GetGroupId() == 0
}

// Access is what a call does to a namespace.
type Access uint8

const (
	// CasWrite: CompareAndSwap and Delete, proposed to the group, which
	// applies them only while it is active.
	CasWrite Access = iota
	// StrongRead: Get and Scan, served after ReadIndex.
	StrongRead
	// RawWrite: RawPut and RawDelete, written to this store's LWW replica.
	RawWrite
	// RawRead: RawGet and RawScan, served from this store's replica.
	RawRead
)

// Source is where a read is served from.
type Source uint8

const (
	// FromLWW: this store's LWW replica of the namespace.
	FromLWW Source = iota
	// FromGroup: this store's applied strong state.
	FromGroup
)

// Decide is the one decision whether this store may serve a call on a
// namespace now. rec is the store's row, gs the state of its replica of
// the namespace's group (nil: no replica here). It returns where a read is
// served from, or the error that tells the client why not:
// FailedPrecondition when the call does not fit the mode, Aborted while a
// switch is under way on this store.
//
// The rules, which keep a namespace from ever accepting writes under two
// modes at once:
//   - strong row: CAS is proposed (the group refuses it unless active);
//     reads need an active replica; raw writes are refused; raw reads see
//     the strong state.
//   - eventual row of a namespace that was strong (it has a group): nothing
//     is served until this store's replica has applied the row's fence,
//     which converted the strong state into LWW records.
//   - eventual row: raw calls are served from the LWW replica; CAS is the
//     wrong API, except while this store's replica is still active (the
//     switch away from strong is under way).
func Decide(rec *storepb.NamespaceRecord, gs *storepb.GroupState, a Access) (Source, error) {
	ns := rec.GetName()
	if ModeOf(rec) == Strong {
		switch a {
		case CasWrite:
			return FromGroup, nil
		case RawWrite:
			if GroupActive(gs) {
				return 0, api.ErrWrongModeForRaw(ns)
			}
			return 0, api.ErrSwitching(ns, string(Strong))
		}
		if !GroupActive(gs) {
			return 0, api.ErrSwitching(ns, string(Strong))
		}
		return FromGroup, nil
	}
	switch a {
	case CasWrite, StrongRead:
		if GroupActive(gs) {
			return 0, api.ErrSwitching(ns, string(Eventual))
		}
		return 0, api.ErrWrongModeForCas(ns)
	}
	if rec.GetGroupId() != 0 && !GroupFenced(gs, rec.GetEpoch()) {
		return 0, api.ErrSwitching(ns, string(Eventual))
	}
	return FromLWW, nil
}

// StateOf reports whether a store has carried out its row: it serves the
// writes of the row's mode.
func StateOf(rec *storepb.NamespaceRecord, gs *storepb.GroupState) State {
	a := RawWrite
	if ModeOf(rec) == Strong {
		a = StrongRead
	}
	if _, err := Decide(rec, gs, a); err != nil {
		return Switching
	}
	return Active
}

// Serving reports whether the namespace is eventual and active here: only
// then does the LWW engine accept its records from peers, repair it and
// collect its tombstones.
func Serving(rec *storepb.NamespaceRecord, gs *storepb.GroupState) bool {
	return ModeOf(rec) == Eventual && StateOf(rec, gs) == Active
}

// String is the row as logs show it.
func String(rec *storepb.NamespaceRecord) string {
	return fmt.Sprintf("%s %s v%d e%d g%d", rec.GetName(), rec.GetMode(), rec.GetVersion(), rec.GetEpoch(), rec.GetGroupId())
}
