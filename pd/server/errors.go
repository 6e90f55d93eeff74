package server

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Every error a PD client can see is built here, each with its gRPC code.
// Unavailable always means "retry, possibly on another member"; the client
// library does exactly that.

func errInvalidName(name string) error {
	return status.Errorf(codes.InvalidArgument,
		"invalid namespace name %q: use 1 to 64 characters from a-z, 0-9, '_' and '-'", name)
}

func errTooManyNamespaces(max int) error {
	return status.Errorf(codes.ResourceExhausted,
		"the cluster already has %d namespaces, the most pd-server --max-namespaces allows: raise it to create more", max)
}

func errInvalidStore(msg string) error {
	return status.Errorf(codes.InvalidArgument, "invalid store: %s", msg)
}

func errNamespaceNotFound(name string) error {
	return status.Errorf(codes.NotFound, "namespace %q does not exist", name)
}

func errContention(name string) error {
	return status.Errorf(codes.Aborted, "namespace %q kept changing during %d attempts to update it: retry", name, maxUpdateAttempts)
}

func errStoreNotRegistered(id uint64) error {
	return status.Errorf(codes.FailedPrecondition, "store %d is not registered: call RegisterStore (or send its addr)", id)
}

func errStoreRemoved(id uint64) error {
	return status.Errorf(codes.FailedPrecondition,
		"store %d was removed from the cluster; a removed store id is never used again: start the store with a new --store-id and an empty --data-dir", id)
}

func errStoreNotFound(id uint64) error {
	return status.Errorf(codes.NotFound, "store %d is not registered", id)
}

func errInvalidReplicas(msg string) error {
	return status.Errorf(codes.InvalidArgument, "invalid replica count: %s", msg)
}

// errForward: the leader could not be reached, or answered Unavailable.
func errForward(leader, msg string) error {
	return status.Errorf(codes.Unavailable, "forward to PD leader %s: %s: retry", leader, msg)
}

func errWatchBroken(msg string) error {
	return status.Errorf(codes.Unavailable, "watch namespaces: %s: reconnect", msg)
}

var (
	errNotReady     = status.Error(codes.Unavailable, "PD member is starting: retry")
	errShuttingDown = status.Error(codes.Unavailable, "PD member is shutting down: retry on another member")
	errNoLeader     = status.Error(codes.Unavailable, "PD has no leader yet: retry")
	errNotLeader    = status.Error(codes.Unavailable, "this PD member is not the leader (leadership changed): retry")
	errLostLeader   = status.Error(codes.Unavailable, "PD leadership changed during the write; it was not applied: retry")
)

// ErrNoChange is returned by an UpdateNamespace function to leave the row as
// it is.
var ErrNoChange = errors.New("no change")

// etcdError turns an error from the etcd client into a status a PD client can
// act on: the caller's own cancellation stays what it is, anything else (no
// quorum, a member going away, a timeout inside etcd) is worth a retry.
func etcdError(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return status.Errorf(codes.Canceled, "%s: %v", op, err)
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return status.Errorf(codes.DeadlineExceeded, "%s: %v", op, err)
	}
	return status.Errorf(codes.Unavailable, "%s: etcd: %v: retry", op, err)
}

func internalError(format string, args ...any) error {
	return status.Error(codes.Internal, fmt.Sprintf(format, args...))
}
