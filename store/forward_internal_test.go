package store

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestUnreached: only an error that says no connection was made counts as
// "never sent"; a connection that broke during the call may have carried
// a write, which must then not be sent to another store.
func TestUnreached(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want bool
	}{
		{`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`, true},
		{`connection error: desc = "transport: Error while dialing: dial tcp: lookup nohost: no such host"`, true},
		{`connection error: desc = "error reading from server: EOF"`, false},
		{`connection error: desc = "transport is closing"`, false},
		{`error reading from server: read tcp 127.0.0.1:5->127.0.0.1:6: read: connection reset by peer`, false},
	} {
		if got := unreached(status.Error(codes.Unavailable, tc.msg)); got != tc.want {
			t.Errorf("unreached(%q) = %v, want %v", tc.msg, got, tc.want)
		}
	}
}
