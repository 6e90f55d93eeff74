// Package clusterid is a cluster's identity: a random non-zero 64-bit id
// created when the cluster is born (a static-mode cluster's bootstrap, or
// PD's first leader), persisted by every store, and sent with every call a
// store or PD makes to a store or to PD, so that nobody talks to a member
// of another cluster (or to a wiped one, which is a new cluster).
//
// On the wire the id is the gRPC metadata rdbClusterID ("rdb-cluster-id"),
// in decimal. A caller that knows its cluster's id sends it (the client
// interceptors below); a server that knows its own refuses a call that
// names another with FailedPrecondition and the ErrorInfo reason
// ReasonMismatch (CheckIncoming). Whether a call may come without one is
// the server's rule.
package clusterid

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// MetadataKey is the gRPC metadata that carries the caller's cluster id.
const MetadataKey = "rdb-cluster-id"

// Reasons of the refusals, in google.rpc.ErrorInfo details of domain
// "rdb" (as the store's other reasons).
const (
	domain = "rdb"
	// ReasonMismatch: the caller and the server belong to different
	// clusters (or the caller did not say which, where it must).
	ReasonMismatch = "CLUSTER_MISMATCH"
	// ReasonPDBehind: PD's revision is behind what the caller has applied
	// of its table (PD was wiped or restored from an older backup).
	ReasonPDBehind = "PD_REVISION_BEHIND"
)

// New returns a new random cluster id (never 0).
func New() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		if id := binary.BigEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

// Encode is the 8-byte big-endian form a store keeps on disk.
func Encode(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// Decode reads Encode's form.
func Decode(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("cluster id of %d bytes, want 8", len(b))
	}
	id := binary.BigEndian.Uint64(b)
	if id == 0 {
		return 0, fmt.Errorf("cluster id 0")
	}
	return id, nil
}

// String formats an id as it appears in metadata, logs and messages.
func String(id uint64) string { return strconv.FormatUint(id, 10) }

// Parse reads String's form (PD keeps it so in etcd).
func Parse(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("bad cluster id %q", s)
	}
	return id, nil
}

// Outgoing adds the cluster id to a call's metadata; 0 (not known) adds
// nothing.
func Outgoing(ctx context.Context, id uint64) context.Context {
	if id == 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, MetadataKey, String(id))
}

// UnaryClientInterceptor sends id() with every unary call.
func UnaryClientInterceptor(id func() uint64) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(Outgoing(ctx, id()), method, req, reply, cc, opts...)
	}
}

// StreamClientInterceptor sends id() when a stream opens.
func StreamClientInterceptor(id func() uint64) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(Outgoing(ctx, id()), desc, cc, method, opts...)
	}
}

// DialOptions are the interceptors that send id() with every call of a
// connection.
func DialOptions(id func() uint64) []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(UnaryClientInterceptor(id)),
		grpc.WithChainStreamInterceptor(StreamClientInterceptor(id)),
	}
}

// Incoming returns the cluster id a call names: ok is false if it names
// none; a malformed one is an InvalidArgument error.
func Incoming(ctx context.Context) (id uint64, ok bool, err error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(MetadataKey)
	if len(vals) == 0 {
		return 0, false, nil
	}
	if len(vals) > 1 {
		return 0, false, status.Errorf(codes.InvalidArgument, "%d values of %s: a call names one cluster", len(vals), MetadataKey)
	}
	id, err = Parse(vals[0])
	if err != nil {
		return 0, false, status.Errorf(codes.InvalidArgument, "%s: %v", MetadataKey, err)
	}
	return id, true, nil
}

// CheckIncoming checks the cluster a call names against own, the server's
// id. server names the server in the error ("store 3", "this PD") and why
// says what a mismatch likely means. A call that names no cluster is
// accepted only if allowMissing, or while the server does not know its own
// cluster (own is 0: a store that has not joined or registered yet, or of
// a cluster born without an id). A call that names a cluster while the
// server does not know its own is told to retry (Unavailable): the server
// cannot tell its own cluster's traffic from another's until it has
// learned its id, which a joining store does within moments.
func CheckIncoming(ctx context.Context, own uint64, server, why string, allowMissing bool) error {
	caller, ok, err := Incoming(ctx)
	if err != nil {
		return err
	}
	switch {
	case own == 0 && ok:
		return status.Errorf(codes.Unavailable, "%s does not know its cluster yet (it has not joined or registered): retry", server)
	case own == 0:
		return nil
	case !ok && allowMissing:
		return nil
	case !ok:
		return Mismatch(fmt.Sprintf("%s belongs to cluster %s; the caller names no cluster (only a store that is joining may call without one)",
			server, String(own)), own, 0)
	case caller != own:
		return Mismatch(fmt.Sprintf("%s belongs to cluster %s; the caller to cluster %s: %s",
			server, String(own), String(caller), why), own, caller)
	}
	return nil
}

// Mismatch is the FailedPrecondition error of a call between two clusters:
// msg says it to a person; the detail carries both ids.
func Mismatch(msg string, own, caller uint64) error {
	return withInfo(codes.FailedPrecondition, ReasonMismatch, msg, map[string]string{
		"server_cluster_id": String(own), "caller_cluster_id": String(caller),
	})
}

// PDBehind is the FailedPrecondition error of a PD whose revision is behind
// what its caller applied.
func PDBehind(applied, current uint64) error {
	return withInfo(codes.FailedPrecondition, ReasonPDBehind, fmt.Sprintf(
		"this store applied the table up to revision %d, but PD is at revision %d: PD was wiped or restored from an older backup; it will not be followed",
		applied, current), map[string]string{"applied_revision": strconv.FormatUint(applied, 10), "pd_revision": strconv.FormatUint(current, 10)})
}

func withInfo(code codes.Code, reason, msg string, md map[string]string) error {
	st := status.New(code, msg)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: domain, Metadata: md}); err == nil {
		st = d
	}
	return st.Err()
}

// Reason returns the ErrorInfo reason of one of this package's refusals
// (ReasonMismatch, ReasonPDBehind), or "".
func Reason(err error) string {
	if err == nil {
		return ""
	}
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.FailedPrecondition {
		return ""
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == domain &&
			(info.GetReason() == ReasonMismatch || info.GetReason() == ReasonPDBehind) {
			return info.GetReason()
		}
	}
	return ""
}

// IsMismatch reports whether err is a Mismatch refusal.
func IsMismatch(err error) bool { return Reason(err) == ReasonMismatch }

// IsPDBehind reports whether err is a PDBehind refusal.
func IsPDBehind(err error) bool { return Reason(err) == ReasonPDBehind }

// MismatchIDs returns the two clusters of a Mismatch refusal: the
// server's and the caller's (0 where the error does not say).
func MismatchIDs(err error) (server, caller uint64) {
	st, ok := status.FromError(err)
	if !ok {
		return 0, 0
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == domain && info.GetReason() == ReasonMismatch {
			server, _ = strconv.ParseUint(info.GetMetadata()["server_cluster_id"], 10, 64)
			caller, _ = strconv.ParseUint(info.GetMetadata()["caller_cluster_id"], 10, 64)
			return server, caller
		}
	}
	return 0, 0
}
