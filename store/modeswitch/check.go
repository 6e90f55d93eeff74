package modeswitch

// The store side of the protocol: the checks a store makes before it acts
// on a step or reports one. Switch steps reach a store from the network
// (GroupPropose): the store proposes only steps of the epoch its own table
// row decided, and stamps fences itself, so no caller can fence a
// namespace forever (a huge epoch) or push every store's clock ahead (a
// fence timestamp from the future).

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/api"
	"github.com/rdb-project/rdb/store/namespace"
)

// CheckStep checks a switch step sent to a group against rec, this store's
// row of the group's namespace (nil: the store knows no namespace with that
// group). The answer is InvalidArgument for a malformed step and
// FailedPrecondition for one this store's table does not call for (the
// driver may try another store, or again once this one has caught up).
func CheckStep(rec *storepb.NamespaceRecord, cmd *storepb.GroupCommand) error {
	if !IsStep(cmd) {
		return status.Error(codes.InvalidArgument, "GroupPropose carries switch steps only (load_begin, load_batch, activate, fence)")
	}
	if rec == nil {
		return status.Error(codes.FailedPrecondition, "no namespace this store knows has that group")
	}
	want, epoch, loadID := namespace.Strong, uint64(0), uint64(0)
	switch x := cmd.GetCmd().(type) {
	case *storepb.GroupCommand_Fence:
		if x.Fence.GetTs() != nil {
			return status.Error(codes.InvalidArgument, "a fence's timestamp is stamped by the store that proposes it: send the fence without ts")
		}
		want, epoch = namespace.Eventual, x.Fence.GetEpoch()
	case *storepb.GroupCommand_LoadBegin:
		epoch, loadID = x.LoadBegin.GetEpoch(), x.LoadBegin.GetLoadId()
	case *storepb.GroupCommand_LoadBatch:
		epoch, loadID = x.LoadBatch.GetEpoch(), x.LoadBatch.GetLoadId()
		for i, r := range x.LoadBatch.GetRecords() {
			if err := api.CheckRecord(r); err != nil {
				return status.Errorf(codes.InvalidArgument, "load batch record %d: %v", i, err)
			}
		}
	case *storepb.GroupCommand_Activate:
		epoch = x.Activate.GetEpoch()
		if x.Activate.GetLoadId() != 0 {
			loadID = x.Activate.GetLoadId()
		}
	}
	if _, ok := cmd.GetCmd().(*storepb.GroupCommand_Activate); !ok && want == namespace.Strong && loadID == 0 {
		return status.Error(codes.InvalidArgument, "a load step needs a non-zero load_id")
	}
	if namespace.ModeOf(rec) != want || epoch != rec.GetEpoch() {
		return status.Errorf(codes.FailedPrecondition,
			"namespace %q is %s at epoch %d on this store: a %s step of epoch %d does not apply", rec.GetName(),
			rec.GetMode(), rec.GetEpoch(), want, epoch)
	}
	return nil
}

// Fenced reports whether a store whose row of a namespace is report has
// stopped raw writes for the switch of row want: it applied that row or a
// newer one, and the row is strong or of a later epoch (it moved on).
func Fenced(report, want *storepb.NamespaceRecord) bool {
	return report.GetVersion() >= want.GetVersion() &&
		(namespace.ModeOf(report) == namespace.Strong || report.GetEpoch() > want.GetEpoch())
}
