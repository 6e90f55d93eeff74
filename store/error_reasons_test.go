package store_test

// Unavailable answers say, in a machine-readable detail, whether the
// request was certainly not applied (safe to retry) or may have been
// applied (the outcome is unknown).

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/store"
	"github.com/rdb-project/rdb/store/storetest"
)

// reasonOf returns the ErrorInfo reason of a gRPC error, or "".
func reasonOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

func TestUnavailableSaysWhetherApplied(t *testing.T) {
	c := storetest.NewCluster(t, 3, storetest.Options{Configure: func(i int, cfg *store.Config) {
		cfg.RequestTimeout = time.Second
	}})
	leader := -1
	storetest.Eventually(t, 10*time.Second, func() error {
		for i := range 3 {
			if st, ok := c.Store(i).GroupStatus("default"); ok && st.IsLeader {
				leader = i
				return nil
			}
		}
		return errors.New("no leader")
	}, "default has a leader")

	// The leader cut off from everyone still takes the proposal, which
	// never commits: the outcome is unknown.
	c.Links.Isolate(uint64(leader+1), 3)
	_, err := c.Cas(leader).CompareAndSwap(context.Background(), &kvrpc.CasRequest{Namespace: "default", Key: "k", Value: "v"})
	if status.Code(err) != codes.Unavailable || reasonOf(err) != "OUTCOME_UNKNOWN" {
		t.Fatalf("CAS on an isolated leader = %v (reason %q), want Unavailable with reason OUTCOME_UNKNOWN", err, reasonOf(err))
	}

	// Once it knows it has no leader, nothing is proposed: not applied.
	storetest.Eventually(t, 10*time.Second, func() error {
		if st, _ := c.Store(leader).GroupStatus("default"); st.Leader != 0 {
			return fmt.Errorf("store %d still sees leader %d", leader+1, st.Leader)
		}
		return nil
	}, "the isolated store loses its leader")
	_, err = c.Cas(leader).CompareAndSwap(context.Background(), &kvrpc.CasRequest{Namespace: "default", Key: "k", Value: "v"})
	if status.Code(err) != codes.Unavailable || reasonOf(err) != "NOT_APPLIED" {
		t.Fatalf("CAS with no leader = %v (reason %q), want Unavailable with reason NOT_APPLIED", err, reasonOf(err))
	}
	_, err = c.Cas(leader).Get(context.Background(), &kvrpc.GetRequest{Namespace: "default", Key: "k"})
	if status.Code(err) != codes.Unavailable || reasonOf(err) != "NOT_APPLIED" {
		t.Fatalf("Get with no leader = %v (reason %q), want Unavailable with reason NOT_APPLIED", err, reasonOf(err))
	}
	// A client's own deadline, shorter than the store's timeout: the store
	// answers just before it, and says so, rather than leave the client
	// with only its deadline (which would not tell whether the write was
	// applied).
	for _, d := range []time.Duration{30 * time.Millisecond, 400 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		_, err = c.Cas(leader).CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: "default", Key: "k", Value: "v"})
		cancel()
		if status.Code(err) != codes.Unavailable || reasonOf(err) != "NOT_APPLIED" {
			t.Fatalf("CAS with no leader and a %v deadline = %v (reason %q), want Unavailable with reason NOT_APPLIED", d, err, reasonOf(err))
		}
	}
}
