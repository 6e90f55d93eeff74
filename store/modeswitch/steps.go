package modeswitch

// The group side of the protocol: how each switch step changes a namespace
// group's switch state, and what it does to the group's keys. Step is pure
// and deterministic, so every replica that applies the same log reaches
// the same state; package nsgroup carries out the Effect in the apply batch
// that also holds the new state.

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
	"github.com/rdb-project/rdb/store/namespace"
)

// Effect is what a step does to the group's keys.
type Effect struct {
	// ClearKeys removes every key of the group: a load begins.
	ClearKeys bool
	// Load writes the live records as keys (tombstones are only counted).
	Load []*storepb.LWWRecord
	// Convert writes the group's keys as this store's LWW records of the
	// namespace, all at ConvertTs, and a tombstone at ConvertTs for every
	// other local record.
	Convert   bool
	ConvertTs hlc.Timestamp
}

// ErrNotAStep is returned for a command that is not a switch step.
var ErrNotAStep = errors.New("modeswitch: not a switch step")

// IsStep reports whether cmd is a switch step (not CAS or Delete).
func IsStep(cmd *storepb.GroupCommand) bool {
	switch cmd.GetCmd().(type) {
	case *storepb.GroupCommand_LoadBegin, *storepb.GroupCommand_LoadBatch,
		*storepb.GroupCommand_Activate, *storepb.GroupCommand_Fence:
		return true
	}
	return false
}

// Step applies one switch step to st and returns the next state (st itself
// when the step does not apply: stale, or another load's) and its effect on
// the keys. It never modifies st.
func Step(st *storepb.GroupState, cmd *storepb.GroupCommand) (*storepb.GroupState, Effect, error) {
	active := namespace.GroupActive(st)
	switch x := cmd.GetCmd().(type) {
	case *storepb.GroupCommand_LoadBegin:
		lb := x.LoadBegin
		// Data enters only while not active, for an epoch after the last
		// activation.
		if active || lb.GetEpoch() <= st.GetActiveEpoch() || lb.GetLoadId() == 0 {
			return st, Effect{}, nil
		}
		next := clone(st)
		next.LoadingEpoch, next.LoadId, next.RecordsLoaded, next.MaxLoadedTs = lb.GetEpoch(), lb.GetLoadId(), 0, nil
		// The keys are no longer what the last fence converted.
		next.ConvertedEpoch = 0
		return next, Effect{ClearKeys: true}, nil

	case *storepb.GroupCommand_LoadBatch:
		lb := x.LoadBatch
		if active || st.GetLoadingEpoch() != lb.GetEpoch() || st.GetLoadId() != lb.GetLoadId() || lb.GetLoadId() == 0 {
			return st, Effect{}, nil
		}
		next := clone(st)
		maxTS := hlc.FromProto(st.GetMaxLoadedTs())
		for _, r := range lb.GetRecords() {
			if ts := hlc.FromProto(r.GetTs()); maxTS.Less(ts) {
				maxTS = ts
			}
		}
		next.RecordsLoaded += uint64(len(lb.GetRecords()))
		next.MaxLoadedTs = maxTS.ToProto()
		return next, Effect{Load: lb.GetRecords()}, nil

	case *storepb.GroupCommand_Activate:
		a := x.Activate
		switch {
		case active && a.GetLoadId() == 0 && a.GetEpoch() > st.GetActiveEpoch():
			// Switched away and back before the group was fenced: it never
			// stopped being the truth, so it continues at the new epoch.
		case !active && a.GetLoadId() != 0 && st.GetLoadingEpoch() == a.GetEpoch() &&
			st.GetLoadId() == a.GetLoadId() && st.GetRecordsLoaded() == a.GetRecordsLoaded():
			// The load arrived complete.
		default:
			return st, Effect{}, nil
		}
		next := clone(st)
		next.ActiveEpoch = a.GetEpoch()
		return next, Effect{}, nil

	case *storepb.GroupCommand_Fence:
		f := x.Fence
		if st.GetFencedEpoch() >= f.GetEpoch() {
			return st, Effect{}, nil
		}
		next := clone(st)
		next.FencedEpoch = f.GetEpoch()
		if !active {
			// Nothing to convert: no strong write was applied since the
			// last fence (a load that never activated is abandoned).
			return next, Effect{}, nil
		}
		ts := FenceTimestamp(st, hlc.FromProto(f.GetTs()))
		next.FenceTs = ts.ToProto()
		next.ConvertedEpoch = f.GetEpoch()
		return next, Effect{Convert: true, ConvertTs: ts}, nil
	}
	return st, Effect{}, fmt.Errorf("%w: %T", ErrNotAStep, cmd.GetCmd())
}

// FenceTimestamp is the one timestamp a fence converts the group's state
// at: the stamp the proposing store gave it, raised strictly above every
// record loaded into the group and above the previous conversion, so the
// converted records win over everything the namespace held before. It is
// computed from the log alone, so every replica picks the same one.
func FenceTimestamp(st *storepb.GroupState, stamped hlc.Timestamp) hlc.Timestamp {
	ts := stamped
	if ts.IsZero() {
		// Never stamped (CheckStep refuses such a fence at intake): the
		// smallest timestamp, raised above the floors like any other.
		ts = ts.Next()
	}
	for _, floor := range []hlc.Timestamp{hlc.FromProto(st.GetMaxLoadedTs()), hlc.FromProto(st.GetFenceTs())} {
		if floor.Less(ts) {
			continue
		}
		next := floor.Next()
		next.StoreID = ts.StoreID
		if !floor.Less(next) {
			// The floor is the greatest timestamp there is: nothing is above
			// it; an equal timestamp is the closest (never reached by a
			// clock within the maximum offset of real time).
			next = floor
		}
		ts = next
	}
	return ts
}

// NeedsConversion reports whether a replica that installs a snapshot with
// state st must convert the snapshot's keys into LWW records (at
// st.FenceTs): the last fence converted them and no load has begun since.
// A replica may not have applied that fence itself; converting again is
// idempotent on one that did.
func NeedsConversion(st *storepb.GroupState) bool {
	return st.GetConvertedEpoch() != 0 && !namespace.GroupActive(st) && st.GetFenceTs() != nil
}

// Done reports whether a group's state carries out a row.
func Done(rec *storepb.NamespaceRecord, st *storepb.GroupState) bool {
	if namespace.ModeOf(rec) == namespace.Eventual {
		return namespace.GroupFenced(st, rec.GetEpoch())
	}
	return namespace.GroupActive(st) && st.GetActiveEpoch() >= rec.GetEpoch()
}

// InitialState is the first state of a namespace's group: active from the
// start if the namespace was strong when the group was created (its first
// epoch), otherwise waiting for a load.
func InitialState(rec *storepb.NamespaceRecord) *storepb.GroupState {
	st := &storepb.GroupState{}
	if namespace.ModeOf(rec) == namespace.Strong && rec.GetEpoch() == 1 {
		st.ActiveEpoch = 1
	}
	return st
}

func clone(st *storepb.GroupState) *storepb.GroupState {
	if st == nil {
		return &storepb.GroupState{}
	}
	return proto.Clone(st).(*storepb.GroupState)
}
