package api

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestUnreached(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`), true},
		{status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp: lookup nowhere: no such host"`), true},
		{status.Error(codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: tls: bad certificate"`), true},
		{status.Error(codes.DeadlineExceeded, "context deadline exceeded while waiting for connections to become ready"), true},
		{status.Error(codes.Unavailable, "error reading from server: EOF"), false},
		{status.Error(codes.Unavailable, "transport is closing"), false},
		{status.Error(codes.DeadlineExceeded, "context deadline exceeded"), false},
		{ErrNoLeader("namespace x"), false},
		{status.Error(codes.InvalidArgument, "Error while dialing"), false},
		{errors.New("connect: connection refused"), false},
	} {
		if got := Unreached(tc.err); got != tc.want {
			t.Errorf("Unreached(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
