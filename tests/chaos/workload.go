package chaos

// The workload: concurrent clients over a small key set, each writing
// values unique in the run, each call recorded with its call and return
// time and its outcome. The clients are rdb's Go client (store/client):
// its retries, failover and leader routing run under the faults, and the
// checker judges what they did with the rest.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/rdb-project/rdb/store/client"
)

// Cluster is what the suite drives: stores it can call, and which of them
// run. Faults are the cluster's own business (see Fault).
type Cluster interface {
	// N is the number of stores.
	N() int
	// Addr is store i's address, host:port: the workload's clients
	// (store/client) are given every store's.
	Addr(i int) string
	// Conn is a client connection to store i; it survives restarts. The
	// suite reads each store's own view through it (its mode, its
	// replica of an eventual namespace).
	Conn(i int) grpc.ClientConnInterface
	// Running reports whether store i is up (it may still be paused or
	// cut off: clients find out as clients do).
	Running(i int) bool
}

// outcomeOf sorts an error of the client: Failed when the client says the
// call certainly had no effect (nothing was applied before its deadline or
// its attempts ran out, the wrong mode, a bad request), Unknown otherwise.
// The checker holds the client to it: a write the client resent after its
// first attempt may have been applied would show as a write applied twice,
// or one applied that the history says failed.
func outcomeOf(err error) Outcome {
	switch {
	case errors.Is(err, client.ErrOutcomeUnknown):
		return Unknown
	case errors.Is(err, client.ErrUnavailable), errors.Is(err, client.ErrWrongMode), errors.Is(err, client.ErrInvalidArgument):
		return Failed
	}
	return Unknown
}

// caller is one client of the cluster (store/client) that notes where
// each of its calls was sent. Its calls are made one at a time.
type caller struct {
	cli      *client.Client
	stores   map[string]int // address -> store index
	toLeader bool           // strong calls go to the namespace's leader once known
	sentTo   string         // the store the last attempt was sent to
	sends    int            // attempts sent since the call began
}

// newCaller makes a client of every store of c. timeout is the time each
// call is given: a store that cannot be reached, or a read that gets no
// answer, is left for another well within it.
func newCaller(c Cluster, toLeader bool, timeout time.Duration) (*caller, error) {
	k := &caller{stores: map[string]int{}, toLeader: toLeader}
	for i := range c.N() {
		k.stores[c.Addr(i)] = i
	}
	cli, err := newClient(c, timeout, client.WithLeaderRouting(toLeader),
		client.WithDialOptions(grpc.WithChainUnaryInterceptor(k.note)))
	if err != nil {
		return nil, err
	}
	k.cli = cli
	return k, nil
}

// newClient makes a client of every store of c whose calls are given
// timeout each.
func newClient(c Cluster, timeout time.Duration, opts ...client.Option) (*client.Client, error) {
	addrs := make([]string, c.N())
	for i := range addrs {
		addrs[i] = c.Addr(i)
	}
	return client.New(addrs, append([]client.Option{
		client.WithDialTimeout(timeout / 4),
		client.WithAttemptTimeout(timeout / 2),
	}, opts...)...)
}

// note records each attempt as it is sent.
func (k *caller) note(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	k.sentTo, k.sends = cc.Target(), k.sends+1
	return invoker(ctx, method, req, reply, cc, opts...)
}

// do runs fn within timeout and records its times, its outcome and the
// store that answered: the one its last attempt was sent to on success,
// the one the client names in its error otherwise (-1: none).
func (k *caller) do(ctx context.Context, h *History, op *Op, timeout time.Duration, fn func(context.Context, *client.Client) error) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	k.sentTo, k.sends = "", 0
	op.ToLeader = k.toLeader
	op.Call = h.Now()
	err := fn(cctx, k.cli)
	op.Return = h.Now()
	op.Sends = k.sends
	at := k.sentTo
	if err != nil {
		op.Outcome = outcomeOf(err)
		op.Err = err.Error()
		at = ""
		var ce *client.Error
		if errors.As(err, &ce) {
			at = ce.Store
		}
	}
	op.Store = -1
	if i, ok := k.stores[at]; ok {
		op.Store = i
	}
	return err
}

func (k *caller) close() { _ = k.cli.Close() }

// Workload runs clients against a cluster and records what they do.
type Workload struct {
	H          *History
	C          Cluster
	Namespaces []Namespace
	Clients    int
	Seed       uint64
	// OpTimeout bounds each call, the client's retries included.
	OpTimeout time.Duration
	// Think is the most a client waits between two calls.
	Think time.Duration
}

// Run runs the clients until ctx ends and waits for their last calls.
// Each client has its own store/client.Client (its own connections,
// leader cache and marks on stores it could not reach); half of them,
// chosen by the seed, route strong calls to the leader, the others leave
// forwarding to the stores.
func (w *Workload) Run(ctx context.Context) error {
	var workers []*worker
	defer func() {
		for _, wk := range workers {
			wk.close()
		}
	}()
	for c := range w.Clients {
		k, err := newCaller(w.C, (w.Seed+uint64(c))%2 == 0, w.OpTimeout)
		if err != nil {
			return fmt.Errorf("client %d: %w", c, err)
		}
		wk := &worker{caller: k, w: w, id: c, rng: rand.New(rand.NewPCG(w.Seed, uint64(1000+c))),
			versions: map[string]uint64{}, eventual: map[string]bool{}}
		for _, ns := range w.Namespaces {
			wk.eventual[ns.Name] = ns.Mode == Eventual
		}
		workers = append(workers, wk)
	}
	var wg sync.WaitGroup
	for _, wk := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wk.run(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// worker is one client of the workload.
type worker struct {
	*caller
	w        *Workload
	id       int
	rng      *rand.Rand
	n        int
	versions map[string]uint64 // ns/key -> last version seen
	eventual map[string]bool   // what the client believes of each namespace
}

func (c *worker) run(ctx context.Context) {
	for ctx.Err() == nil {
		ns := c.w.Namespaces[c.rng.IntN(len(c.w.Namespaces))]
		key := ns.Keys[c.rng.IntN(len(ns.Keys))]
		op := &Op{Client: c.id, NS: ns.Name, Key: key}
		if c.eventual[ns.Name] {
			c.raw(ctx, op)
		} else {
			c.strong(ctx, op)
		}
		if op.Outcome == Failed && ns.Mode == Flip {
			// The store says which mode the namespace has, or is going to
			// (the client's error carries the store's message).
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

func (c *worker) value() string {
	c.n++
	return fmt.Sprintf("c%d-%d", c.id, c.n)
}

// call runs fn with the op's timeout and records it.
func (c *worker) call(ctx context.Context, op *Op, fn func(context.Context, *client.Client) error) {
	_ = c.do(ctx, c.w.H, op, c.w.OpTimeout, fn)
	c.w.H.Add(op)
}

func (c *worker) strong(ctx context.Context, op *Op) {
	vk := op.NS + "/" + op.Key
	known := c.versions[vk]
	switch r := c.rng.IntN(100); {
	case r < 40:
		op.Kind = Get
		c.call(ctx, op, func(ctx context.Context, cli *client.Client) error {
			res, err := cli.Get(ctx, op.NS, op.Key)
			if err == nil {
				op.Found, op.OutValue, op.Version = res.Found, res.Value, res.Version
				c.versions[vk] = op.Version
			}
			return err
		})
	case r < 88:
		op.Kind, op.Value, op.Expected = Cas, c.value(), known
		if r >= 82 {
			op.Expected = 0
		}
		c.call(ctx, op, func(ctx context.Context, cli *client.Client) error {
			res, err := cli.CompareAndSwap(ctx, op.NS, op.Key, op.Value, op.Expected)
			if err == nil {
				op.Success, op.Version = res.Success, res.Version
				if !op.Success {
					op.OutValue = res.Value
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
		c.call(ctx, op, func(ctx context.Context, cli *client.Client) error {
			res, err := cli.Delete(ctx, op.NS, op.Key, op.Expected)
			if err == nil {
				op.Success, op.Found = res.Success, res.Found
				if op.Success {
					c.versions[vk] = 0
				} else {
					op.Version, op.OutValue = res.Version, res.Value
					c.versions[vk] = op.Version
				}
			}
			return err
		})
	}
}

func (c *worker) raw(ctx context.Context, op *Op) {
	switch r := c.rng.IntN(100); {
	case r < 30:
		op.Kind = RawGet
		c.call(ctx, op, func(ctx context.Context, cli *client.Client) error {
			v, found, err := cli.RawGet(ctx, op.NS, op.Key)
			if err == nil {
				op.Found, op.OutValue = found, v
			}
			return err
		})
	case r < 85:
		op.Kind, op.Value = RawPut, c.value()
		c.call(ctx, op, func(ctx context.Context, cli *client.Client) error {
			ts, err := cli.RawPut(ctx, op.NS, op.Key, op.Value)
			if err == nil {
				op.TS = tsOf(ts)
			}
			return err
		})
	default:
		op.Kind = RawDelete
		c.call(ctx, op, func(ctx context.Context, cli *client.Client) error {
			ts, err := cli.RawDelete(ctx, op.NS, op.Key)
			if err == nil {
				op.TS = tsOf(ts)
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
