package client

// What a failed call tells its caller, and which failures are retried.
//
// The store says, in a reason attached to its Unavailable answers
// (store/api), whether a request certainly had no effect (NOT_APPLIED) or
// may have been applied (OUTCOME_UNKNOWN). Where the store could not say
// (the connection broke, the client stopped waiting), the client decides
// from what it knows: a call that never left it (no connection could be
// made: api.Unreached) had no effect; one that was sent and not answered
// may have, if it writes.

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/store/api"
)

// Kinds of failure, for errors.Is. Every error a call returns is an
// *Error; its gRPC status stays reachable (status.FromError,
// status.Code).
var (
	// ErrOutcomeUnknown: a write was sent and may or may not have been
	// applied — the store said so (it proposed the write and could not
	// learn the outcome in time), the connection broke after the request
	// left, or the deadline passed while it was in flight. It is never
	// retried by the client: read the key before writing it again.
	ErrOutcomeUnknown = errors.New("outcome unknown: the write may have been applied")
	// ErrUnavailable: no store could serve the call before its deadline or
	// its attempts ran out, and nothing was applied.
	ErrUnavailable = errors.New("unavailable: not applied")
	// ErrWrongMode: the call does not fit the namespace's mode
	// (FailedPrecondition): a strong namespace takes CompareAndSwap,
	// Get, Delete, Scan and BatchGet; an eventual one the Raw calls.
	ErrWrongMode = errors.New("wrong mode for the namespace")
	// ErrInvalidArgument: the request is malformed (a bad namespace name,
	// an empty or oversize key, an oversize value, an unknown mode...).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("client closed")
)

// Error is a failed call: what was called, where, and why.
type Error struct {
	// Op is the call ("CompareAndSwap", "RawPut", "GetMode", ...).
	Op string
	// Namespace is the call's namespace ("" for ListNamespaceModes).
	Namespace string
	// Store is the address of the store the last attempt went to ("" if
	// none was tried).
	Store string
	// Attempts is how many attempts were made (0: the call was refused
	// before any).
	Attempts int

	kinds []error
	err   error // the last attempt's gRPC status error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rdb: %s", e.Op)
	if e.Namespace != "" {
		fmt.Fprintf(&b, " on namespace %q", e.Namespace)
	}
	if e.Store != "" {
		fmt.Fprintf(&b, " at %s", e.Store)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (%d attempts)", e.Attempts)
	}
	for _, k := range e.kinds {
		fmt.Fprintf(&b, ": %v", k)
	}
	st := status.Convert(e.err)
	fmt.Fprintf(&b, ": %s: %s", st.Code(), st.Message())
	return b.String()
}

// Unwrap returns the kinds of the failure (ErrOutcomeUnknown, ...,
// context.DeadlineExceeded) and the gRPC status error of the last attempt.
func (e *Error) Unwrap() []error { return append(append([]error(nil), e.kinds...), e.err) }

// GRPCStatus is the status of the last attempt, as the store (or gRPC)
// gave it: status.FromError and status.Code see through the Error.
func (e *Error) GRPCStatus() *status.Status { return status.Convert(e.err) }

// verdict is what the client does after a failed attempt.
type verdict int

const (
	// final: return the error.
	final verdict = iota
	// retry: the attempt had no effect; try again after a wait.
	retry
	// failover: the attempt never left the client; try another store now.
	failover
	// unknown: a write that may have been applied; return it as such.
	unknown
)

// judge sorts a failed attempt. write: the call changes data, so an
// attempt that may have reached a store is not repeated.
func judge(err error, write bool) verdict {
	switch api.Reason(err) {
	case api.ReasonNotApplied:
		return retry
	case api.ReasonOutcomeUnknown:
		if write {
			return unknown
		}
		return retry
	}
	if api.Unreached(err) {
		return failover
	}
	switch status.Code(err) {
	case codes.Aborted: // a mode switch in progress: nothing was applied
		return retry
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		// Sent, and no answer that says what became of it.
		if write {
			return unknown
		}
		return retry
	}
	return final
}

// kindOf is the kind of a final error: the codes a caller acts on.
func kindOf(err error, kv bool) error {
	switch status.Code(err) {
	case codes.InvalidArgument:
		return ErrInvalidArgument
	case codes.FailedPrecondition:
		if kv {
			return ErrWrongMode
		}
	}
	return nil
}

// newError makes the error of a call; nil kinds are left out.
func newError(o *op, store string, attempts int, err error, kinds ...error) *Error {
	e := &Error{Op: o.name, Namespace: o.ns, Store: store, Attempts: attempts, err: err}
	for _, k := range kinds {
		if k != nil && !errors.Is(e, k) {
			e.kinds = append(e.kinds, k)
		}
	}
	return e
}

// invalid is the error of a request refused before any attempt.
func invalid(o *op, err error) *Error { return newError(o, "", 0, err, ErrInvalidArgument) }

// closedStatus is the status of calls on a closed client.
var closedStatus = status.Error(codes.Canceled, "the client is closed")

// ctxKinds are the kinds a context's end adds to the error of a call that
// had no effect: the context's error, and ErrUnavailable if it was the
// deadline (the call gave up on the stores in time).
func ctxKinds(ctx context.Context) []error {
	switch err := ctxErr(ctx); err {
	case nil:
		return nil
	case context.DeadlineExceeded:
		return []error{ErrUnavailable, err}
	default:
		return []error{err}
	}
}
