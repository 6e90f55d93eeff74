package chaos

// The workload: concurrent clients over a small key set, each writing
// values unique in the run, each call recorded with its call and return
// time and its outcome.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/store/api"
)

// Cluster is what the suite drives: stores it can call, and which of them
// run. Faults are the cluster's own business (see Fault).
type Cluster interface {
	// N is the number of stores.
	N() int
	// Conn is a client connection to store i; it survives restarts.
	Conn(i int) grpc.ClientConnInterface
	// Running reports whether store i is up (it may still be paused or
	// cut off: clients find out as clients do).
	Running(i int) bool
}

// outcomeOf sorts an error: Failed when the call certainly had no effect,
// Unknown when it may have.
func outcomeOf(err error) Outcome {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.FailedPrecondition, codes.Aborted, codes.InvalidArgument:
		return Failed
	case codes.Unavailable:
		// The store says whether it proposed anything (api.Reason); an
		// Unavailable without that word (a dropped connection) may come
		// after a proposal.
		if api.Reason(err) == api.ReasonNotApplied {
			return Failed
		}
	}
	return Unknown
}

// Workload runs clients against a cluster and records what they do.
type Workload struct {
	H          *History
	C          Cluster
	Namespaces []Namespace
	Clients    int
	Seed       uint64
	// OpTimeout bounds each call.
	OpTimeout time.Duration
	// Think is the most a client waits between two calls.
	Think time.Duration
}

// Run runs the clients until ctx ends and waits for their last calls.
func (w *Workload) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for c := range w.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &client{w: w, id: c, rng: rand.New(rand.NewPCG(w.Seed, uint64(1000+c))),
				versions: map[string]uint64{}, eventual: map[string]bool{}}
			for _, ns := range w.Namespaces {
				cl.eventual[ns.Name] = ns.Mode == Eventual
			}
			cl.run(ctx)
		}()
	}
	wg.Wait()
}

type client struct {
	w        *Workload
	id       int
	rng      *rand.Rand
	n        int
	versions map[string]uint64 // ns/key -> last version seen
	eventual map[string]bool   // what the client believes of each namespace
}

func (c *client) run(ctx context.Context) {
	for ctx.Err() == nil {
		ns := c.w.Namespaces[c.rng.IntN(len(c.w.Namespaces))]
		key := ns.Keys[c.rng.IntN(len(ns.Keys))]
		i, ok := c.pickStore()
		if !ok {
			sleepCtx(ctx, 20*time.Millisecond)
			continue
		}
		op := &Op{Client: c.id, Store: i, NS: ns.Name, Key: key}
		if c.eventual[ns.Name] {
			c.raw(ctx, op)
		} else {
			c.strong(ctx, op)
		}
		if op.Outcome == Failed && ns.Mode == Flip {
			// The store says which mode the namespace has, or is going to.
			switch {
			case strings.Contains(op.Err, "is eventual:"), strings.Contains(op.Err, "switching to eventual"):
				c.eventual[ns.Name] = true
			case strings.Contains(op.Err, "is strong:"), strings.Contains(op.Err, "switching to strong"):
				c.eventual[ns.Name] = false
			}
		}
		if c.w.Think > 0 {
			sleepCtx(ctx, time.Duration(c.rng.Int64N(int64(c.w.Think))))
		}
	}
}

// pickStore picks a running store at random.
func (c *client) pickStore() (int, bool) {
	n := c.w.C.N()
	start := c.rng.IntN(n)
	for j := range n {
		if i := (start + j) % n; c.w.C.Running(i) {
			return i, true
		}
	}
	return 0, false
}

func (c *client) value() string {
	c.n++
	return fmt.Sprintf("c%d-%d", c.id, c.n)
}

// call runs fn with the op's timeout and records its times and outcome.
func (c *client) call(ctx context.Context, op *Op, fn func(context.Context) error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.w.OpTimeout)
	defer cancel()
	op.Call = c.w.H.Now()
	err := fn(cctx)
	op.Return = c.w.H.Now()
	if err != nil {
		op.Outcome = outcomeOf(err)
		op.Err = err.Error()
	}
	c.w.H.Add(op)
}

func (c *client) strong(ctx context.Context, op *Op) {
	kv := kvrpc.NewKvCasClient(c.w.C.Conn(op.Store))
	vk := op.NS + "/" + op.Key
	known := c.versions[vk]
	switch r := c.rng.IntN(100); {
	case r < 40:
		op.Kind = Get
		c.call(ctx, op, func(ctx context.Context) error {
			resp, err := kv.Get(ctx, &kvrpc.GetRequest{Namespace: op.NS, Key: op.Key})
			if err == nil {
				op.Found, op.OutValue, op.Version = resp.GetFound(), resp.GetValue(), resp.GetVersion()
				c.versions[vk] = op.Version
			}
			return err
		})
	case r < 88:
		op.Kind, op.Value, op.Expected = Cas, c.value(), known
		if r >= 82 {
			op.Expected = 0
		}
		c.call(ctx, op, func(ctx context.Context) error {
			resp, err := kv.CompareAndSwap(ctx, &kvrpc.CasRequest{Namespace: op.NS, Key: op.Key, Value: op.Value, ExpectedVersion: op.Expected})
			if err == nil {
				op.Success, op.Version = resp.GetSuccess(), resp.GetVersion()
				if !op.Success {
					op.OutValue = resp.GetValue()
				}
				c.versions[vk] = op.Version
			}
			return err
		})
	default:
		op.Kind, op.Expected = Delete, known
		if r >= 96 {
			op.Expected = 0
		}
		c.call(ctx, op, func(ctx context.Context) error {
			resp, err := kv.Delete(ctx, &kvrpc.DeleteRequest{Namespace: op.NS, Key: op.Key, ExpectedVersion: op.Expected})
			if err == nil {
				op.Success, op.Found = resp.GetSuccess(), resp.GetFound()
				if op.Success {
					c.versions[vk] = 0
				} else {
					op.Version, op.OutValue = resp.GetVersion(), resp.GetValue()
					c.versions[vk] = op.Version
				}
			}
			return err
		})
	}
}

func (c *client) raw(ctx context.Context, op *Op) {
	kv := kvrpc.NewKvRawClient(c.w.C.Conn(op.Store))
	switch r := c.rng.IntN(100); {
	case r < 30:
		op.Kind = RawGet
		c.call(ctx, op, func(ctx context.Context) error {
			resp, err := kv.RawGet(ctx, &kvrpc.RawGetRequest{Namespace: op.NS, Key: op.Key})
			if err == nil {
				op.Found, op.OutValue = resp.GetFound(), resp.GetValue()
			}
			return err
		})
	case r < 85:
		op.Kind, op.Value = RawPut, c.value()
		c.call(ctx, op, func(ctx context.Context) error {
			resp, err := kv.RawPut(ctx, &kvrpc.RawPutRequest{Namespace: op.NS, Key: op.Key, Value: op.Value})
			if err == nil {
				op.TS = tsOf(resp.GetTimestamp())
			}
			return err
		})
	default:
		op.Kind = RawDelete
		c.call(ctx, op, func(ctx context.Context) error {
			resp, err := kv.RawDelete(ctx, &kvrpc.RawDeleteRequest{Namespace: op.NS, Key: op.Key})
			if err == nil {
				op.TS = tsOf(resp.GetTimestamp())
			}
			return err
		})
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
