// Package api holds the limits every input is checked against and every
// error a client can see, each with its gRPC code (modes and the rules of
// a namespace's state are package namespace's). Handlers return
// these errors unchanged so that a client always gets a message it can act
// on.
package api

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/storepb"
)

// Limits on every input, from a client, a peer or PD: the one definition
// the store's API, the LWW engine and the placement driver check against.
const (
	MaxNamespaceLen = 64
	MaxKeyBytes     = 4096
	MaxValueBytes   = 1 << 20
	DefaultScan     = 1000
	MaxScan         = 10000
	// MaxBatchKeys and MaxBatchBytes bound one batch call (RawBatchPut,
	// RawBatchGet, RawBatchDelete, BatchGet): its keys, and the bytes of
	// its keys and values together.
	MaxBatchKeys  = 10000
	MaxBatchBytes = 16 << 20
)

// ValidNamespaceName reports whether ns is a namespace name: 1 to
// MaxNamespaceLen characters of a-z, 0-9, '_' and '-'. Such a name never
// contains '/', which the storage keys of eventual namespaces rely on.
func ValidNamespaceName(ns string) bool {
	if len(ns) == 0 || len(ns) > MaxNamespaceLen {
		return false
	}
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// ValidateNamespace checks a namespace name: 1 to 64 characters of a-z,
// 0-9, '_' and '-'.
func ValidateNamespace(ns string) error {
	if ns == "" {
		return status.Error(codes.InvalidArgument, "namespace is empty: set \"namespace\" (for example \"default\")")
	}
	if !ValidNamespaceName(ns) {
		return status.Errorf(codes.InvalidArgument,
			"namespace %q is invalid: use 1 to 64 characters of a-z, 0-9, '_' and '-'", truncate(ns))
	}
	return nil
}

// ValidateKey checks a key: 1 to MaxKeyBytes bytes.
func ValidateKey(key string) error {
	if key == "" {
		return status.Error(codes.InvalidArgument, "key is empty: keys are 1 to 4096 bytes")
	}
	if len(key) > MaxKeyBytes {
		return status.Errorf(codes.InvalidArgument, "key is %d bytes: the maximum is %d", len(key), MaxKeyBytes)
	}
	return nil
}

// ValidateValue checks a value: at most MaxValueBytes bytes.
func ValidateValue(value string) error {
	if len(value) > MaxValueBytes {
		return status.Errorf(codes.InvalidArgument, "value is %d bytes: the maximum is %d (1 MiB)", len(value), MaxValueBytes)
	}
	return nil
}

// ValidateWrite checks a namespace, key and value together.
func ValidateWrite(ns, key, value string) error {
	if err := ValidateNamespace(ns); err != nil {
		return err
	}
	if err := ValidateKey(key); err != nil {
		return err
	}
	return ValidateValue(value)
}

// ValidateRead checks a namespace and key.
func ValidateRead(ns, key string) error {
	if err := ValidateNamespace(ns); err != nil {
		return err
	}
	return ValidateKey(key)
}

// ValidateScan checks a scan's namespace and bounds and returns the limit
// to use.
func ValidateScan(ns, start, end string, limit uint32) (int, error) {
	if err := ValidateNamespace(ns); err != nil {
		return 0, err
	}
	if len(start) > MaxKeyBytes || len(end) > MaxKeyBytes {
		return 0, status.Errorf(codes.InvalidArgument, "scan bounds are at most %d bytes", MaxKeyBytes)
	}
	if end != "" && end <= start {
		return 0, status.Errorf(codes.InvalidArgument, "end_key %q is not after start_key %q: the range is empty", truncate(end), truncate(start))
	}
	switch {
	case limit == 0:
		return DefaultScan, nil
	case limit > MaxScan:
		return 0, status.Errorf(codes.InvalidArgument, "limit %d is above the maximum of %d", limit, MaxScan)
	}
	return int(limit), nil
}

// ValidateBatchPut checks a RawBatchPut: the namespace, every pair's key
// and value, and the batch limits. An empty batch is valid (it writes
// nothing).
func ValidateBatchPut(ns string, pairs []*kvrpc.RawKv) error {
	if err := validateBatchSize(ns, len(pairs)); err != nil {
		return err
	}
	size := 0
	for i, p := range pairs {
		if err := ValidateKey(p.GetKey()); err != nil {
			return inBatch(i, err)
		}
		if err := ValidateValue(p.GetValue()); err != nil {
			return inBatch(i, err)
		}
		if size += len(p.GetKey()) + len(p.GetValue()); size > MaxBatchBytes {
			return batchTooLarge(i)
		}
	}
	return nil
}

// ValidateBatchKeys checks a batch of keys (RawBatchGet, RawBatchDelete,
// BatchGet): the namespace, every key, and the batch limits. An empty
// batch is valid.
func ValidateBatchKeys(ns string, keys []string) error {
	if err := validateBatchSize(ns, len(keys)); err != nil {
		return err
	}
	size := 0
	for i, k := range keys {
		if err := ValidateKey(k); err != nil {
			return inBatch(i, err)
		}
		if size += len(k); size > MaxBatchBytes {
			return batchTooLarge(i)
		}
	}
	return nil
}

func validateBatchSize(ns string, n int) error {
	if err := ValidateNamespace(ns); err != nil {
		return err
	}
	if n > MaxBatchKeys {
		return status.Errorf(codes.InvalidArgument, "batch of %d keys: a batch holds at most %d keys: split it", n, MaxBatchKeys)
	}
	return nil
}

// inBatch names the batch entry a validation error is about.
func inBatch(i int, err error) error {
	return status.Errorf(codes.InvalidArgument, "batch entry %d: %s", i, status.Convert(err).Message())
}

func batchTooLarge(i int) error {
	return status.Errorf(codes.InvalidArgument,
		"batch carries more than %d bytes (16 MiB) of keys and values (passed at entry %d): split it", MaxBatchBytes, i)
}

// Reasons carried by Unavailable and Aborted answers, as the Reason of a
// google.rpc.ErrorInfo detail in Domain: a client tells from them, without
// reading the message, whether a retry is safe.
const (
	// Domain is the ErrorInfo domain of every reason rdb sends.
	Domain = "rdb"
	// ReasonNotApplied: the request certainly had no effect (no leader, a
	// switch in progress, the store stopping before it proposed): safe to
	// retry, even a CAS.
	ReasonNotApplied = "NOT_APPLIED"
	// ReasonOutcomeUnknown: the write was proposed but its outcome could
	// not be learned in time; it may have been applied. Read before
	// retrying a write that is not idempotent.
	ReasonOutcomeUnknown = "OUTCOME_UNKNOWN"
)

// withReason returns a status error of code and msg with an ErrorInfo
// detail carrying reason.
func withReason(code codes.Code, reason, msg string) error {
	st := status.New(code, msg)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: Domain}); err == nil {
		st = d
	}
	return st.Err()
}

// Reason returns the reason rdb attached to err (ReasonNotApplied,
// ReasonOutcomeUnknown), or "" if it has none.
func Reason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == Domain {
			return info.GetReason()
		}
	}
	return ""
}

// ErrWrongModeForRaw answers a KvRaw write on a strong namespace.
func ErrWrongModeForRaw(ns string) error {
	return status.Errorf(codes.FailedPrecondition,
		"namespace %q is strong: write it with kvrpc.KvCas/CompareAndSwap or kvrpc.KvCas/Delete, read many keys with kvrpc.KvCas/BatchGet (or switch it with UpdateNamespaceMode)", ns)
}

// ErrWrongModeForCas answers a KvCas call on an eventual namespace.
func ErrWrongModeForCas(ns string) error {
	return status.Errorf(codes.FailedPrecondition,
		"namespace %q is eventual: use kvrpc.KvRaw/RawPut, RawGet, RawDelete, RawScan or their batch forms RawBatchPut, RawBatchGet, RawBatchDelete (or switch it with UpdateNamespaceMode)", ns)
}

// ErrSwitching answers a write (or a read that cannot be served) while the
// namespace's mode is being switched. Nothing was applied.
func ErrSwitching(ns, to string) error {
	return withReason(codes.Aborted, ReasonNotApplied, fmt.Sprintf("namespace %q is switching to %s: retry shortly", ns, to))
}

// ErrNoLeader answers when a group has no leader or no quorum: nothing was
// proposed.
func ErrNoLeader(what string) error {
	return withReason(codes.Unavailable, ReasonNotApplied, fmt.Sprintf("%s has no leader or no quorum yet: not applied: retry", what))
}

// ErrNotProposed answers a request whose time ran out before it was
// proposed: nothing was applied.
func ErrNotProposed(what string) error {
	return withReason(codes.Unavailable, ReasonNotApplied, fmt.Sprintf("%s did not take the request in time: not applied: retry", what))
}

// ErrTimeout answers a write that was proposed but whose outcome did not
// arrive in time: it may or may not have been applied.
func ErrTimeout(what string) error {
	return withReason(codes.Unavailable, ReasonOutcomeUnknown,
		fmt.Sprintf("%s did not complete in time (no quorum?): the write may have been applied: read before retrying", what))
}

// ErrReadTimeout answers a read that could not be confirmed in time.
func ErrReadTimeout(what string) error {
	return withReason(codes.Unavailable, ReasonNotApplied, fmt.Sprintf("%s could not confirm a read in time (no quorum?): retry", what))
}

// ErrStopping answers requests that arrive while the store shuts down;
// nothing was applied.
var ErrStopping = withReason(codes.Unavailable, ReasonNotApplied, "store is shutting down: retry on another store")

// ErrStoppedUnknown answers a write that was proposed when the store shut
// down: it may have been applied.
var ErrStoppedUnknown = withReason(codes.Unavailable, ReasonOutcomeUnknown,
	"store shut down while the write was in flight: it may have been applied: read before retrying")

// ErrCatchingUp answers raw writes while a restarted store re-applies its
// table from its own log: nothing was applied.
var ErrCatchingUp = withReason(codes.Unavailable, ReasonNotApplied, "store is catching up with the cluster's mode table: retry shortly")

// ErrClockBehind answers raw writes to a namespace whose conversion from
// strong carries a timestamp this store's clock cannot reach yet within
// the maximum clock offset: nothing was applied.
func ErrClockBehind(ns string) error {
	return withReason(codes.Unavailable, ReasonNotApplied,
		fmt.Sprintf("namespace %q: this store's clock is behind the namespace's switch timestamp by more than the maximum offset: check clock synchronization; retry", ns))
}

// ErrNotHeld: a forwarded call reached a store that does not hold the
// namespace either (its table is behind the sender's).
func ErrNotHeld(ns string, store uint64) error {
	return withReason(codes.Unavailable, ReasonNotApplied,
		fmt.Sprintf("store %d does not hold namespace %q (its placement is changing): not applied: retry", store, ns))
}

// ErrNoHolder: no store that holds the namespace could be reached.
func ErrNoHolder(ns string) error {
	return withReason(codes.Unavailable, ReasonNotApplied,
		fmt.Sprintf("no store that holds namespace %q could be reached: not applied: retry", ns))
}

// Internal wraps an unexpected server-side failure.
func Internal(format string, args ...any) error {
	return status.Error(codes.Internal, fmt.Sprintf(format, args...))
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// CheckRecord checks one record of an eventual namespace, wherever it comes
// from (a peer's push or repair, a dump, a load): a key of 1 to
// MaxKeyBytes bytes, a value of at most MaxValueBytes, a timestamp, and no
// value on a tombstone. The error is plain (callers add their code).
func CheckRecord(r *storepb.LWWRecord) error {
	if r == nil {
		return errors.New("nil record")
	}
	if len(r.GetKey()) == 0 || len(r.GetKey()) > MaxKeyBytes {
		return fmt.Errorf("key is %d bytes, want 1 to %d", len(r.GetKey()), MaxKeyBytes)
	}
	if len(r.GetValue()) > MaxValueBytes {
		return fmt.Errorf("key %q: value is %d bytes, above the %d-byte limit", truncate(string(r.GetKey())), len(r.GetValue()), MaxValueBytes)
	}
	if ts := r.GetTs(); ts.GetWallTime() == 0 && ts.GetLogical() == 0 && ts.GetStoreId() == 0 {
		return fmt.Errorf("key %q has no timestamp", truncate(string(r.GetKey())))
	}
	if r.GetTombstone() && len(r.GetValue()) > 0 {
		return fmt.Errorf("key %q is a tombstone with a %d-byte value", truncate(string(r.GetKey())), len(r.GetValue()))
	}
	return nil
}
