package chaos

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/store/client"
	"github.com/rdb-project/rdb/store/testport"
)

// Tests of how the workload records the client's answers: the checker
// trusts a Failed operation to have had no effect, and the switching
// namespace's clients learn its mode from the store's message.

func TestOutcomeOf(t *testing.T) {
	grpcErr := status.Error(codes.Unavailable, "error reading from server: EOF")
	for _, tc := range []struct {
		name string
		err  error
		want Outcome
	}{
		{"outcome unknown", fmt.Errorf("%w: %w", client.ErrOutcomeUnknown, grpcErr), Unknown},
		{"outcome unknown at the deadline", errors.Join(client.ErrOutcomeUnknown, context.DeadlineExceeded), Unknown},
		{"not applied before the deadline", errors.Join(client.ErrUnavailable, context.DeadlineExceeded), Failed},
		{"wrong mode", client.ErrWrongMode, Failed},
		{"invalid argument", client.ErrInvalidArgument, Failed},
		{"a deadline the client does not explain", context.DeadlineExceeded, Unknown},
		{"a gRPC error the client does not explain", grpcErr, Unknown},
		{"closed client", client.ErrClosed, Unknown},
	} {
		if got := outcomeOf(tc.err); got != tc.want {
			t.Errorf("%s: outcomeOf(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// addrCluster is a Cluster of addresses where no store runs.
type addrCluster []string

func (c addrCluster) N() int                            { return len(c) }
func (c addrCluster) Addr(i int) string                 { return c[i] }
func (c addrCluster) Conn(int) grpc.ClientConnInterface { return nil }
func (c addrCluster) Running(int) bool                  { return false }

// TestWorkloadRecordsClientAnswers calls a real cluster through the
// workload's client: a call of the wrong mode fails with the store's
// message (the switching namespace's clients read it), an answer names
// the store that gave it, and a cluster that cannot be reached fails the
// call without sending it.
func TestWorkloadRecordsClientAnswers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := NewLocalCluster(ctx, t, LocalOptions{N: 3, NamespaceModes: map[string]string{"cas": "strong", "lww": "eventual"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := NewHistory()
	for _, toLeader := range []bool{false, true} {
		k, err := newCaller(c, toLeader, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		cas := func(ns, value string) *Op {
			op := &Op{NS: ns, Key: "k", Kind: Cas, Value: value}
			_ = k.do(ctx, h, op, 2*time.Second, func(ctx context.Context, cli *client.Client) error {
				res, err := cli.CompareAndSwap(ctx, op.NS, op.Key, op.Value, 0)
				op.Success, op.Version = res.Success, res.Version
				return err
			})
			return op
		}
		raw := func(ns string) *Op {
			op := &Op{NS: ns, Key: "k", Kind: RawPut, Value: "r"}
			_ = k.do(ctx, h, op, 2*time.Second, func(ctx context.Context, cli *client.Client) error {
				_, err := cli.RawPut(ctx, op.NS, op.Key, op.Value)
				return err
			})
			return op
		}
		for _, tc := range []struct {
			op   *Op
			want string
		}{
			{cas("lww", "v"), "is eventual:"},
			{raw("cas"), "is strong:"},
		} {
			if tc.op.Outcome != Failed || !strings.Contains(tc.op.Err, tc.want) {
				t.Errorf("to leader %v: %v: want failed with the store's %q", toLeader, tc.op, tc.want)
			}
			if tc.op.Store < 0 || tc.op.Sends != 1 {
				t.Errorf("to leader %v: %v: want one send and the store that answered", toLeader, tc.op)
			}
		}
		op := cas("cas", fmt.Sprint(toLeader))
		if op.Outcome != OK || op.Store < 0 || op.Sends != 1 || op.ToLeader != toLeader {
			t.Errorf("to leader %v: %v: want an answer from a known store after one send", toLeader, op)
		}
		route := map[bool]string{false: "/any@s", true: "/leader@s"}[toLeader]
		if s := op.String(); !strings.Contains(s, route) || strings.Contains(s, "s?") {
			t.Errorf("to leader %v: history line %q does not say how the call was routed and which store answered", toLeader, s)
		}
		k.close()
	}

	// No store listens: nothing is sent, and the call certainly failed.
	var none addrCluster
	for range 2 {
		addr, err := testport.Free()
		if err != nil {
			t.Fatal(err)
		}
		none = append(none, addr)
	}
	k, err := newCaller(none, true, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer k.close()
	op := &Op{NS: "cas", Key: "k", Kind: Cas, Value: "x"}
	_ = k.do(ctx, h, op, time.Second, func(ctx context.Context, cli *client.Client) error {
		_, err := cli.CompareAndSwap(ctx, op.NS, op.Key, op.Value, 0)
		return err
	})
	if op.Outcome != Failed || op.Sends != 0 || op.Store < 0 {
		t.Errorf("%v: want failed without a send, at the store the client tried last", op)
	}
}
