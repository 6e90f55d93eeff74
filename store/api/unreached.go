package api

import (
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Unreached tells whether a gRPC client error says the call never left
// the caller: no connection to the server could be made (gRPC fails such a
// call before it sends anything), or the call's time ran out while it
// waited for one. A connection that broke during the call ("error reading
// from server", "transport is closing") may have carried the request, and
// so may a call whose time ran out after it was sent: neither is
// unreached. A store forwarding a call and the Go client both rely on it
// to resend a write safely.
func Unreached(err error) bool {
	st := status.Convert(err)
	msg := st.Message()
	switch st.Code() {
	case codes.Unavailable:
		return strings.Contains(msg, "Error while dialing") || strings.Contains(msg, "connect: connection refused") ||
			strings.Contains(msg, "no such host") || strings.Contains(msg, "authentication handshake failed")
	case codes.DeadlineExceeded, codes.Canceled:
		return strings.Contains(msg, "while waiting for connections to become ready")
	}
	return false
}
