package rdbbench

// The workloads and the closed loop that runs them: --clients goroutines,
// each sending its next request as soon as the last one is answered, over
// --conns targets, for --duration or until --total requests have been
// sent.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Workload names.
const (
	workCas         = "cas"
	workGet         = "get"
	workRawPut      = "rawput"
	workRawGet      = "rawget"
	workRawBatchPut = "rawbatchput"
	workMixed       = "mixed"
)

// workload describes one kind of load.
type workload struct {
	name string
	// mode is the namespace mode it needs.
	mode string
	// prefill: the key space is written first, so that reads find their
	// keys and each client learns the versions of the keys it owns (a
	// namespace written by an earlier run then costs no mismatches).
	prefill bool
	// owned: its writes are compare-and-swaps, each client of keys of its
	// own, so that they succeed.
	owned bool
}

var workloads = map[string]workload{
	workCas:         {name: workCas, mode: modeStrong, prefill: true, owned: true},
	workGet:         {name: workGet, mode: modeStrong, prefill: true},
	workRawPut:      {name: workRawPut, mode: modeEventual},
	workRawGet:      {name: workRawGet, mode: modeEventual, prefill: true},
	workRawBatchPut: {name: workRawBatchPut, mode: modeEventual},
	workMixed:       {name: workMixed, mode: modeStrong, prefill: true, owned: true},
}

// params are one run's settings.
type params struct {
	workload  workload
	clients   int
	duration  time.Duration // 0 with total
	total     int64         // 0 with duration
	valSize   int
	keySpace  int
	batch     int
	readRatio float64
	seed      uint64
	timeout   time.Duration // of one request
	// readyTimeout bounds the wait for the namespace to serve the mode.
	readyTimeout time.Duration
	// progress receives the progress display (nil: none); tty draws a bar
	// redrawn in place, else a line every progressEvery.
	progress      io.Writer
	tty           bool
	progressEvery time.Duration
}

// check reports settings that cannot run.
func (p params) check() error {
	switch {
	case p.clients < 1:
		return errors.New("--clients must be at least 1")
	case p.valSize < 0:
		return errors.New("--val-size must not be negative")
	case p.valSize > maxValueSize:
		return fmt.Errorf("--val-size must be at most %d (rdb's value limit)", maxValueSize)
	case p.keySpace < 1:
		return errors.New("--key-space must be at least 1")
	case p.duration <= 0 && p.total <= 0:
		return errors.New("give a positive --duration or --total")
	case p.timeout <= 0:
		return errors.New("--request-timeout must be positive")
	case p.readyTimeout <= 0:
		return errors.New("--ready-timeout must be positive")
	case p.workload.owned && p.keySpace < p.clients:
		return fmt.Errorf("--key-space (%d) must be at least --clients (%d): each client writes keys of its own", p.keySpace, p.clients)
	case p.workload.name == workRawBatchPut && (p.batch < 1 || p.batch > maxBatch):
		return fmt.Errorf("--batch must be 1 to %d", maxBatch)
	case p.workload.name == workRawBatchPut && p.batch > p.keySpace:
		return fmt.Errorf("--batch (%d) must be at most --key-space (%d): a batch's keys are distinct", p.batch, p.keySpace)
	case p.workload.name == workMixed && (p.readRatio < 0 || p.readRatio > 1):
		return errors.New("--read-ratio must be between 0 and 1")
	}
	return nil
}

// Limits of rdb's API (proto/kvrpc).
const (
	maxValueSize = 1 << 20
	maxBatch     = 10000
)

// keyName is the key of index i of the key space.
func keyName(i int) string {
	var b [24]byte
	return string(strconv.AppendInt(append(b[:0], "key-"...), int64(i), 10))
}

// client is one closed-loop client's state.
type client struct {
	target Target
	rng    *rand.Rand
	value  string
	// owned are the key indexes this client writes (owned workloads), with
	// the version it last saw of each (0: absent or unknown).
	owned    []int
	versions []uint64
	batch    []KV
	stats    *stats
}

// stats are one client's counts.
type stats struct {
	hist             *Histogram
	ops, keys        int64
	reads, writes    int64
	mismatches       int64
	notFound         int64
	errors           map[codes.Code]int64
	firstErrorByCode map[codes.Code]error
}

func newStats() *stats {
	return &stats{hist: NewHistogram(), errors: map[codes.Code]int64{}, firstErrorByCode: map[codes.Code]error{}}
}

func (s *stats) merge(o *stats) {
	s.hist.Merge(o.hist)
	s.ops += o.ops
	s.keys += o.keys
	s.reads += o.reads
	s.writes += o.writes
	s.mismatches += o.mismatches
	s.notFound += o.notFound
	for c, n := range o.errors {
		s.errors[c] += n
		if _, ok := s.firstErrorByCode[c]; !ok {
			s.firstErrorByCode[c] = o.firstErrorByCode[c]
		}
	}
}

// outcome is what one operation did, besides failing.
type outcome struct {
	keys     int
	read     bool
	mismatch bool
	notFound bool
}

// newClients makes the clients of a run: client i sends over target
// i mod len(targets), draws from its own random source, and owns the key
// indexes congruent to i modulo the number of clients.
func newClients(p params, targets []Target) []*client {
	cs := make([]*client, p.clients)
	for i := range cs {
		rng := rand.New(rand.NewPCG(p.seed, uint64(i)))
		c := &client{target: targets[i%len(targets)], rng: rng, value: randomValue(rng, p.valSize), stats: newStats()}
		for k := i; k < p.keySpace; k += p.clients {
			c.owned = append(c.owned, k)
		}
		c.versions = make([]uint64, len(c.owned))
		if p.workload.name == workRawBatchPut {
			c.batch = make([]KV, p.batch)
		}
		cs[i] = c
	}
	return cs
}

// randomValue is n random letters (values are proto strings: UTF-8).
func randomValue(rng *rand.Rand, n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[rng.IntN(len(letters))]
	}
	return string(b)
}

// cas compare-and-swaps one of the client's own keys with the version it
// last saw; a mismatch (someone else wrote it, or an earlier run) teaches
// it the current version.
func (c *client) cas(ctx context.Context) (outcome, error) {
	j := c.rng.IntN(len(c.owned))
	ok, version, err := c.target.Cas(ctx, keyName(c.owned[j]), c.value, c.versions[j])
	if err != nil {
		return outcome{keys: 1}, err
	}
	c.versions[j] = version
	return outcome{keys: 1, mismatch: !ok}, nil
}

// op runs one operation of the workload.
func (c *client) op(ctx context.Context, p *params) (outcome, error) {
	switch p.workload.name {
	case workCas:
		return c.cas(ctx)
	case workGet:
		found, err := c.target.Get(ctx, keyName(c.rng.IntN(p.keySpace)))
		return outcome{keys: 1, read: true, notFound: err == nil && !found}, err
	case workRawPut:
		return outcome{keys: 1}, c.target.RawPut(ctx, keyName(c.rng.IntN(p.keySpace)), c.value)
	case workRawGet:
		found, err := c.target.RawGet(ctx, keyName(c.rng.IntN(p.keySpace)))
		return outcome{keys: 1, read: true, notFound: err == nil && !found}, err
	case workRawBatchPut:
		// A run of consecutive keys from a random start: distinct (etcd
		// refuses a transaction that writes a key twice).
		start := c.rng.IntN(p.keySpace)
		for i := range c.batch {
			c.batch[i] = KV{Key: keyName((start + i) % p.keySpace), Value: c.value}
		}
		return outcome{keys: len(c.batch)}, c.target.RawBatchPut(ctx, c.batch)
	case workMixed:
		if c.rng.Float64() < p.readRatio {
			found, err := c.target.Get(ctx, keyName(c.rng.IntN(p.keySpace)))
			return outcome{keys: 1, read: true, notFound: err == nil && !found}, err
		}
		return c.cas(ctx)
	}
	return outcome{}, fmt.Errorf("unknown workload %q", p.workload.name)
}

// fatalCode reports errors that no retry will cure: the run stops on the
// first one rather than count them.
func fatalCode(c codes.Code) bool {
	switch c {
	case codes.Unimplemented, codes.PermissionDenied, codes.Unauthenticated, codes.InvalidArgument, codes.FailedPrecondition:
		return true
	}
	return false
}

// errInterrupted is returned when the run's context ends before the run
// does.
var errInterrupted = errors.New("interrupted")

// run prepares the targets (mode, readiness, pre-fill) and runs the load.
// It returns the merged counts and the time the load took; on a fatal
// error or an interruption it returns what was done so far with the error.
func run(ctx context.Context, p params, targets []Target) (*stats, time.Duration, error) {
	if err := p.check(); err != nil {
		return nil, 0, err
	}
	if err := prepare(ctx, p, targets); err != nil {
		return nil, 0, err
	}
	clients := newClients(p, targets)
	if p.workload.prefill {
		if err := prefill(ctx, p, clients); err != nil {
			return nil, 0, err
		}
	}
	return load(ctx, p, clients)
}

// prepare puts the namespace in the workload's mode and waits until every
// target answers a read, for at most p.readyTimeout.
func prepare(ctx context.Context, p params, targets []Target) error {
	ctx, cancel := context.WithTimeout(ctx, p.readyTimeout)
	defer cancel()
	for _, t := range targets {
		if err := t.SetMode(ctx, p.workload.mode); err != nil {
			return err
		}
	}
	for _, t := range targets {
		for {
			var err error
			reqCtx, cancelReq := context.WithTimeout(ctx, p.timeout)
			if p.workload.mode == modeStrong {
				_, err = t.Get(reqCtx, keyName(0))
			} else {
				_, err = t.RawGet(reqCtx, keyName(0))
			}
			cancelReq()
			if err == nil {
				break
			}
			if !retryable(err) {
				return fmt.Errorf("the cluster does not serve reads: %w", err)
			}
			if err := pause(ctx, 100*time.Millisecond, err); err != nil {
				return fmt.Errorf("the cluster does not serve reads: %w", err)
			}
		}
	}
	return nil
}

// prefillWriters is how many writes the pre-fill keeps in flight: as many
// as a run's clients, but at least this many, so that a single-client
// run's pre-fill does not take long.
const prefillWriters = 64

// prefill writes every key of the key space once, each through the client
// that owns it (which learns its version), retrying what may succeed
// later; it reports its progress as the load does.
func prefill(ctx context.Context, p params, clients []*client) error {
	type task struct {
		c *client
		j int
	}
	var tasks []task
	for _, c := range clients {
		for j := range c.owned {
			tasks = append(tasks, task{c, j})
		}
	}
	var done, next atomic.Int64
	began := time.Now()
	stop := startProgress(p, "prefill", func() progressState {
		n := done.Load()
		return progressState{fraction: float64(n) / float64(len(tasks)), elapsed: time.Since(began), ops: n, unit: "keys"}
	})
	defer stop()
	var wg sync.WaitGroup
	errs := make([]error, max(p.clients, prefillWriters))
	for w := range errs {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(tasks) || ctx.Err() != nil {
					return
				}
				t := tasks[i]
				if err := t.c.prefillKey(ctx, p, t.j); err != nil {
					errs[w] = fmt.Errorf("prefill %s: %w", keyName(t.c.owned[t.j]), err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return errInterrupted
	}
	return errors.Join(errs...)
}

// prefillKey writes the client's j-th own key.
func (c *client) prefillKey(ctx context.Context, p params, j int) error {
	k := c.owned[j]
	for attempt := 0; ; attempt++ {
		reqCtx, cancel := context.WithTimeout(ctx, p.timeout)
		var err error
		if p.workload.mode == modeStrong {
			var version uint64
			// A mismatch means the key exists: its version is learnt.
			_, version, err = c.target.Cas(reqCtx, keyName(k), c.value, c.versions[j])
			if err == nil {
				c.versions[j] = version
			}
		} else {
			err = c.target.RawPut(reqCtx, keyName(k), c.value)
		}
		cancel()
		if err == nil {
			return nil
		}
		if !retryable(err) || attempt == 10 {
			return err
		}
		if err := pause(ctx, 100*time.Millisecond, err); err != nil {
			return err
		}
	}
}

// load runs the clients until the duration passes or total operations
// have been sent, then returns their merged counts.
func load(ctx context.Context, p params, clients []*client) (*stats, time.Duration, error) {
	var (
		issued, ops, failed atomic.Int64
		stopped             atomic.Bool
		fatalOnce           sync.Once
		fatal               error
	)
	take := func() bool {
		if stopped.Load() {
			return false
		}
		return p.total <= 0 || issued.Add(1) <= p.total
	}
	start := time.Now()
	stopProgress := startProgress(p, p.workload.name, func() progressState {
		st := progressState{elapsed: time.Since(start), ops: ops.Load(), errors: failed.Load(), unit: "ops"}
		if p.total > 0 {
			st.fraction = float64(st.ops+st.errors) / float64(p.total)
		} else {
			st.fraction = st.elapsed.Seconds() / p.duration.Seconds()
		}
		return st
	})
	if p.total <= 0 {
		timer := time.AfterFunc(p.duration, func() { stopped.Store(true) })
		defer timer.Stop()
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			for take() {
				reqCtx, cancel := context.WithTimeout(ctx, p.timeout)
				began := time.Now()
				out, err := c.op(reqCtx, &p)
				took := time.Since(began)
				cancel()
				if ctx.Err() != nil {
					stopped.Store(true)
					return
				}
				s := c.stats
				if err != nil {
					failed.Add(1)
					code := errorCode(err)
					s.errors[code]++
					if _, ok := s.firstErrorByCode[code]; !ok {
						s.firstErrorByCode[code] = err
					}
					if fatalCode(code) {
						fatalOnce.Do(func() { fatal = err })
						stopped.Store(true)
					}
					continue
				}
				ops.Add(1)
				s.ops++
				s.hist.Record(took)
				s.keys += int64(out.keys)
				if out.read {
					s.reads++
				} else {
					s.writes++
				}
				if out.mismatch {
					s.mismatches++
				}
				if out.notFound {
					s.notFound++
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()
	all := newStats()
	for _, c := range clients {
		all.merge(c.stats)
	}
	switch {
	case fatal != nil:
		if st, ok := status.FromError(fatal); ok {
			return all, elapsed, fmt.Errorf("%s: the cluster answers %s: %s", p.workload.name, st.Code(), st.Message())
		}
		return all, elapsed, fmt.Errorf("%s: %w", p.workload.name, fatal)
	case ctx.Err() != nil:
		return all, elapsed, errInterrupted
	}
	return all, elapsed, nil
}
