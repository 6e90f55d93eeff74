// Tests of the hybrid logical clock: ordering, monotonicity, the receive
// and forward rules with their max-offset check, the durable upper bound,
// and the edges of the int64/uint32 range.

package hlc

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rdb-project/rdb/proto/storepb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// manual is a physical clock the test sets by hand.
type manual struct{ ns atomic.Int64 }

func (m *manual) now() int64          { return m.ns.Load() }
func (m *manual) set(ns int64)        { m.ns.Store(ns) }
func (m *manual) add(d time.Duration) { m.ns.Add(int64(d)) }

func newClock(t *testing.T, cfg Config) *Clock {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustNow(t *testing.T, c *Clock) Timestamp {
	t.Helper()
	ts, err := c.Now()
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestCompare(t *testing.T) {
	tests := []struct {
		a, b Timestamp
		want int
	}{
		{Timestamp{1, 0, 1}, Timestamp{1, 0, 1}, 0},
		{Timestamp{1, 0, 1}, Timestamp{2, 0, 1}, -1},
		{Timestamp{3, 0, 1}, Timestamp{2, 9, 9}, 1},
		{Timestamp{2, 1, 1}, Timestamp{2, 2, 0}, -1},
		{Timestamp{2, 2, 1}, Timestamp{2, 1, 9}, 1},
		{Timestamp{2, 2, 1}, Timestamp{2, 2, 2}, -1},
		{Timestamp{2, 2, 3}, Timestamp{2, 2, 2}, 1},
	}
	for _, tt := range tests {
		if got := Compare(tt.a, tt.b); got != tt.want {
			t.Errorf("Compare(%v, %v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := Compare(tt.b, tt.a); got != -tt.want {
			t.Errorf("Compare(%v, %v) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
		if got := tt.a.Less(tt.b); got != (tt.want < 0) {
			t.Errorf("%v.Less(%v) = %v", tt.a, tt.b, got)
		}
	}
}

func TestTimestampProtoAndString(t *testing.T) {
	ts := Timestamp{Wall: 1700000000000000123, Logical: 4, StoreID: 2}
	if got := FromProto(ts.ToProto()); got != ts {
		t.Fatalf("round trip: got %v, want %v", got, ts)
	}
	if got := FromProto(nil); !got.IsZero() {
		t.Fatalf("FromProto(nil) = %v, want zero", got)
	}
	if got := FromProto(&storepb.Timestamp{}); !got.IsZero() {
		t.Fatalf("FromProto(empty) = %v, want zero", got)
	}
	if ts.IsZero() {
		t.Fatal("non-zero timestamp reports IsZero")
	}
	if got, want := ts.String(), "1700000000.000000123,4@2"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{StoreID: 1, MaxOffset: -1},
		{StoreID: 1, Window: -1},
		{StoreID: 1, Persisted: -5},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestMonotonicUnderConcurrency(t *testing.T) {
	c := newClock(t, Config{StoreID: 7})
	const workers, perWorker = 8, 5000
	results := make([][]Timestamp, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]Timestamp, 0, perWorker)
			for range perWorker {
				ts, err := c.Now()
				if err != nil {
					t.Error(err)
					return
				}
				out = append(out, ts)
			}
			results[w] = out
		}()
	}
	wg.Wait()
	seen := make(map[Timestamp]bool, workers*perWorker)
	for w, out := range results {
		for i, ts := range out {
			if seen[ts] {
				t.Fatalf("timestamp %v handed out twice", ts)
			}
			seen[ts] = true
			if ts.StoreID != 7 {
				t.Fatalf("store id %d, want 7", ts.StoreID)
			}
			if i > 0 && !out[i-1].Less(ts) {
				t.Fatalf("worker %d: %v then %v", w, out[i-1], ts)
			}
		}
	}
}

func TestLogicalBumpWithFrozenPhysical(t *testing.T) {
	var pt manual
	pt.set(1000)
	c := newClock(t, Config{StoreID: 1, Physical: pt.now})
	for i := range uint32(5) {
		ts := mustNow(t, c)
		if ts.Wall != 1000 || ts.Logical != i {
			t.Fatalf("call %d: got %v, want wall 1000 logical %d", i, ts, i)
		}
	}
	// The physical clock going backwards does not move the clock back.
	pt.set(500)
	if ts := mustNow(t, c); ts.Wall != 1000 || ts.Logical != 5 {
		t.Fatalf("after the physical clock went back: %v", ts)
	}
	// The physical clock advancing resets the logical part.
	pt.set(2000)
	if ts := mustNow(t, c); ts.Wall != 2000 || ts.Logical != 0 {
		t.Fatalf("after the physical clock advanced: %v", ts)
	}
}

func TestLogicalOverflowCarriesIntoWall(t *testing.T) {
	var pt manual
	pt.set(1000)
	c := newClock(t, Config{StoreID: 1, Physical: pt.now})
	if err := c.Update(Timestamp{Wall: 1000, Logical: ^uint32(0), StoreID: 2}); err != nil {
		t.Fatal(err)
	}
	if ts := mustNow(t, c); ts.Wall != 1001 || ts.Logical != 0 {
		t.Fatalf("got %v, want wall 1001 logical 0", ts)
	}
}

func TestUpdateTakesMax(t *testing.T) {
	var pt manual
	pt.set(int64(10 * time.Second))
	c := newClock(t, Config{StoreID: 1, Physical: pt.now, MaxOffset: time.Second})
	first := mustNow(t, c)

	// A remote timestamp behind the clock changes nothing.
	behind := Timestamp{Wall: first.Wall - 100, Logical: 50, StoreID: 2}
	if err := c.Update(behind); err != nil {
		t.Fatal(err)
	}
	if ts := mustNow(t, c); ts.Wall != first.Wall || ts.Logical != first.Logical+1 {
		t.Fatalf("after an older remote: %v", ts)
	}

	// A remote timestamp ahead (within the offset) is overtaken by Now.
	ahead := Timestamp{Wall: first.Wall + int64(500*time.Millisecond), Logical: 3, StoreID: 9}
	if err := c.Update(ahead); err != nil {
		t.Fatal(err)
	}
	ts := mustNow(t, c)
	if !ahead.Less(ts) || ts.Wall != ahead.Wall || ts.Logical != 4 || ts.StoreID != 1 {
		t.Fatalf("after a newer remote %v: %v", ahead, ts)
	}

	// Same wall, larger logical: the logical part is taken.
	same := Timestamp{Wall: ts.Wall, Logical: 40, StoreID: 3}
	if err := c.Update(same); err != nil {
		t.Fatal(err)
	}
	if ts := mustNow(t, c); ts.Logical != 41 {
		t.Fatalf("after a remote at the same wall time: %v", ts)
	}
}

// store is an in-memory Persist target that counts its calls.
type store struct {
	mu    sync.Mutex
	upper int64
	calls int
	fail  error
}

func (s *store) persist(upper int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.fail != nil {
		return s.fail
	}
	if upper <= s.upper {
		return errors.New("upper bound moved backwards")
	}
	s.upper = upper
	return nil
}

func TestRestartNeverGoesBackwards(t *testing.T) {
	var pt manual
	pt.set(int64(100 * time.Second))
	var disk store
	cfg := Config{StoreID: 1, Physical: pt.now, Persist: disk.persist}
	c := newClock(t, cfg)
	var last Timestamp
	for range 1000 {
		last = mustNow(t, c)
		pt.add(time.Millisecond)
	}
	// One second of wall time was handed out; the bound moves once per
	// window (250ms by default), not once per call.
	if disk.calls > 6 {
		t.Fatalf("persisted %d times for 1s of wall time with a 250ms window", disk.calls)
	}
	if last.Wall >= disk.upper {
		t.Fatalf("handed out %v at or above the durable bound %d", last, disk.upper)
	}

	// Restarted at the same physical time, the clock runs ahead of it by
	// at most the window, so peers (max offset 500ms) accept its
	// timestamps.
	cfg.Persisted = disk.upper
	if ts := mustNow(t, newClock(t, cfg)); ts.Wall-pt.now() > int64(cfg.Window) {
		t.Fatalf("restarted clock %v is %v ahead of physical time", ts, time.Duration(ts.Wall-pt.now()))
	}

	// Restart with the physical clock ten seconds behind and then frozen.
	pt.set(int64(90 * time.Second))
	cfg.Persisted = disk.upper
	c2 := newClock(t, cfg)
	prev := last
	for range 100 {
		ts := mustNow(t, c2)
		if !prev.Less(ts) {
			t.Fatalf("after restart %v is not after %v", ts, prev)
		}
		prev = ts
	}
}

func TestDefaultWindowBelowMaxOffset(t *testing.T) {
	for _, tt := range []struct{ maxOffset, want time.Duration }{
		{0, DefaultWindow},
		{time.Second, DefaultWindow},
		{100 * time.Millisecond, 50 * time.Millisecond},
		// MaxOffset/2 rounds to zero; a zero window would persist a
		// bound equal to the wall time it covers.
		{1, 1},
	} {
		c := newClock(t, Config{StoreID: 1, MaxOffset: tt.maxOffset})
		if got := time.Duration(c.window); got != tt.want {
			t.Errorf("MaxOffset %v: window %v, want %v", tt.maxOffset, got, tt.want)
		}
	}
}

func TestPersistErrorPropagates(t *testing.T) {
	var pt manual
	pt.set(int64(time.Second))
	disk := store{fail: errors.New("disk on fire")}
	c := newClock(t, Config{StoreID: 1, Physical: pt.now, Persist: disk.persist})
	if _, err := c.Now(); err == nil || !errors.Is(err, disk.fail) {
		t.Fatalf("Now with a failing Persist = %v, want the persist error", err)
	}
	// Update past the bound needs a new bound too.
	if err := c.Update(Timestamp{Wall: pt.now(), StoreID: 2}); !errors.Is(err, disk.fail) {
		t.Fatalf("Update with a failing Persist = %v", err)
	}
	// Nothing was handed out; once the disk recovers, the clock works.
	disk.mu.Lock()
	disk.fail = nil
	disk.mu.Unlock()
	ts := mustNow(t, c)
	if ts.Wall != pt.now() || ts.Logical != 0 {
		t.Fatalf("after recovery: %v", ts)
	}
}

func TestUpdatePersistsBeyondBound(t *testing.T) {
	var pt manual
	pt.set(int64(time.Second))
	var disk store
	c := newClock(t, Config{StoreID: 1, Physical: pt.now, Persist: disk.persist, Window: 100 * time.Millisecond})
	mustNow(t, c)
	remote := Timestamp{Wall: pt.now() + int64(400*time.Millisecond), StoreID: 2}
	if err := c.Update(remote); err != nil {
		t.Fatal(err)
	}
	if disk.upper <= remote.Wall {
		t.Fatalf("bound %d not above received %v: a restart could hand out older timestamps", disk.upper, remote)
	}
}

func TestDecodeUpper(t *testing.T) {
	if v, err := DecodeUpper(EncodeUpper(12345)); err != nil || v != 12345 {
		t.Fatalf("round trip: %d, %v", v, err)
	}
	for _, b := range [][]byte{nil, {1, 2, 3}, make([]byte, 9), {0x80, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := DecodeUpper(b); err == nil {
			t.Errorf("DecodeUpper(%x) succeeded", b)
		}
	}
}

func FuzzDecodeUpper(f *testing.F) {
	f.Add(EncodeUpper(0))
	f.Add(EncodeUpper(1 << 62))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add(EncodeUpper(math.MaxInt64))
	f.Add(EncodeUpper(math.MinInt64))
	f.Add(make([]byte, 9))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeUpper(b)
		if err != nil {
			return
		}
		if got := EncodeUpper(v); string(got) != string(b) {
			t.Fatalf("re-encoding %d gave %x, want %x", v, got, b)
		}
	})
}

func BenchmarkNow(b *testing.B) {
	c, err := New(Config{StoreID: 1, Persist: func(int64) error { return nil }})
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Now(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestTooFarAheadRefused checks that Update and Forward both refuse a
// timestamp more than MaxOffset ahead of the physical clock, leaving the
// clock unchanged, and accept one at most MaxOffset ahead. A fence agreed
// by the cluster is no exception: it must not drag the clock arbitrarily
// far. The last case is the overflow of the distance: with a physical
// reading below zero, Wall-pt wraps negative and used to pass the check.
func TestTooFarAheadRefused(t *testing.T) {
	const maxOffset = 500 * time.Millisecond
	pt := int64(10 * time.Second)
	methods := []struct {
		name  string
		apply func(*Clock, Timestamp) error
	}{
		{"Update", (*Clock).Update},
		{"Forward", (*Clock).Forward},
	}
	cases := []struct {
		name    string
		pt      int64
		ts      Timestamp
		refused bool
	}{
		{"behind", pt, Timestamp{Wall: pt - 1, StoreID: 2}, false},
		{"at the offset", pt, Timestamp{Wall: pt + int64(maxOffset), Logical: 3, StoreID: 2}, false},
		{"1ns past the offset", pt, Timestamp{Wall: pt + int64(maxOffset) + 1, StoreID: 2}, true},
		{"an hour ahead", pt, Timestamp{Wall: pt + int64(time.Hour), Logical: 3, StoreID: 2}, true},
		{"max wall, physical below zero", -int64(time.Second), Timestamp{Wall: math.MaxInt64, StoreID: 2}, true},
	}
	for _, m := range methods {
		for _, tt := range cases {
			t.Run(m.name+"/"+tt.name, func(t *testing.T) {
				var clk manual
				clk.set(tt.pt)
				c := newClock(t, Config{StoreID: 1, Physical: clk.now, MaxOffset: maxOffset})
				before := mustNow(t, c)
				err := m.apply(c, tt.ts)
				if !tt.refused {
					if err != nil {
						t.Fatalf("%s(%v) = %v, want nil", m.name, tt.ts, err)
					}
					if ts := mustNow(t, c); !tt.ts.Less(ts) || !before.Less(ts) {
						t.Fatalf("Now() = %v after %s(%v), want after both it and %v", ts, m.name, tt.ts, before)
					}
					return
				}
				if !errors.Is(err, ErrTooFarAhead) {
					t.Fatalf("%s(%v) = %v, want ErrTooFarAhead", m.name, tt.ts, err)
				}
				t.Logf("refusal reads: %v", err)
				if ts := mustNow(t, c); ts.Wall != before.Wall || ts.Logical != before.Logical+1 {
					t.Fatalf("a refused timestamp moved the clock: %v then %v", before, ts)
				}
			})
		}
	}
}

func TestNext(t *testing.T) {
	tests := []struct {
		name    string
		t, want Timestamp
	}{
		{"logical step", Timestamp{Wall: 5, Logical: 7, StoreID: 2}, Timestamp{Wall: 5, Logical: 8, StoreID: 2}},
		{"zero", Timestamp{}, Timestamp{Logical: 1}},
		{"logical carries into wall", Timestamp{Wall: 5, Logical: math.MaxUint32, StoreID: 2}, Timestamp{Wall: 6, StoreID: 2}},
		{"carry at the top wall minus one", Timestamp{Wall: math.MaxInt64 - 1, Logical: math.MaxUint32, StoreID: 2}, Timestamp{Wall: math.MaxInt64, StoreID: 2}},
		{"top wall, logical below max", Timestamp{Wall: math.MaxInt64, Logical: 1, StoreID: 2}, Timestamp{Wall: math.MaxInt64, Logical: 2, StoreID: 2}},
		{"the top is returned unchanged", Timestamp{Wall: math.MaxInt64, Logical: math.MaxUint32, StoreID: 2}, Timestamp{Wall: math.MaxInt64, Logical: math.MaxUint32, StoreID: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.t.Next()
			if got != tt.want {
				t.Fatalf("%v.Next() = %v, want %v", tt.t, got, tt.want)
			}
			// Strictly after, except at the top, and nothing with the
			// same store id fits between (the step is one logical tick
			// or a carry to logical 0).
			if top := tt.t == got; top != (tt.t.Wall == math.MaxInt64 && tt.t.Logical == math.MaxUint32) {
				t.Fatalf("%v.Next() = %v: unchanged only at the top", tt.t, got)
			}
			if tt.t != got && !tt.t.Less(got) {
				t.Fatalf("%v.Next() = %v is not after it", tt.t, got)
			}
		})
	}
}

// recorder is a Persist target that keeps every bound it is given, without
// judging them, so a test can check what would have reached the disk.
type recorder struct {
	mu     sync.Mutex
	bounds []int64
}

func (r *recorder) persist(upper int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bounds = append(r.bounds, upper)
	return nil
}

func (r *recorder) last(t *testing.T) int64 {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bounds) == 0 {
		t.Fatal("nothing persisted")
	}
	return r.bounds[len(r.bounds)-1]
}

// checkDecodable fails t unless every persisted bound is one the store can
// load again at start-up.
func (r *recorder) checkDecodable(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.bounds {
		if _, err := DecodeUpper(EncodeUpper(b)); err != nil {
			t.Fatalf("persisted bound %d would stop the store from starting: %v", b, err)
		}
	}
}

// TestBoundSaturates drives the clock to wall times within a window of
// math.MaxInt64: the persisted bound must saturate at math.MaxInt64, not
// wrap to a negative one that DecodeUpper rejects at the next start.
func TestBoundSaturates(t *testing.T) {
	const window = 250 * time.Millisecond
	tests := []struct {
		name string
		pt   int64
		// move drives the clock.
		move func(*Clock) error
	}{
		{"Now at max-1", math.MaxInt64 - 1, func(c *Clock) error { _, err := c.Now(); return err }},
		{"Now at max-window+1", math.MaxInt64 - int64(window) + 1, func(c *Clock) error { _, err := c.Now(); return err }},
		{"Now at max", math.MaxInt64, func(c *Clock) error { _, err := c.Now(); return err }},
		{"Update to max", math.MaxInt64 - int64(time.Millisecond), func(c *Clock) error {
			return c.Update(Timestamp{Wall: math.MaxInt64, Logical: 1, StoreID: 2})
		}},
		{"Forward to max", math.MaxInt64 - int64(time.Millisecond), func(c *Clock) error {
			return c.Forward(Timestamp{Wall: math.MaxInt64, Logical: 1, StoreID: 2})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var disk recorder
			c := newClock(t, Config{StoreID: 1, Physical: func() int64 { return tt.pt }, Persist: disk.persist, Window: window})
			if err := tt.move(c); err != nil {
				t.Fatal(err)
			}
			disk.checkDecodable(t)
			if got := disk.last(t); got != math.MaxInt64 {
				t.Fatalf("persisted bound %d, want math.MaxInt64", got)
			}
		})
	}
}

// TestExhaustedClockRefuses checks that a clock at the largest timestamp
// there is refuses to hand out another rather than wrap around to the most
// negative wall time, before everything it handed out; and that a clock
// restarted from a saturated bound, which cannot tell what was handed out
// at that wall time, refuses too.
func TestExhaustedClockRefuses(t *testing.T) {
	top := Timestamp{Wall: math.MaxInt64, Logical: math.MaxUint32, StoreID: 2}
	tests := []struct {
		name      string
		persisted int64
		// move drives the clock towards the top.
		move func(*Clock) error
		// handOut is how many timestamps Now hands out before refusing.
		handOut int
	}{
		{"Update to one below the top", 0, func(c *Clock) error {
			return c.Update(Timestamp{Wall: math.MaxInt64, Logical: math.MaxUint32 - 1, StoreID: 2})
		}, 1},
		{"Update to the top", 0, func(c *Clock) error { return c.Update(top) }, 0},
		{"Forward to the top", 0, func(c *Clock) error { return c.Forward(top) }, 0},
		{"restart from a saturated bound", math.MaxInt64, func(*Clock) error { return nil }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var disk recorder
			c := newClock(t, Config{
				StoreID:   1,
				Physical:  func() int64 { return math.MaxInt64 },
				Persisted: tt.persisted,
				Persist:   disk.persist,
			})
			if err := tt.move(c); err != nil {
				t.Fatal(err)
			}
			var prev Timestamp
			for i := range tt.handOut {
				ts := mustNow(t, c)
				if i > 0 && !prev.Less(ts) {
					t.Fatalf("%v then %v", prev, ts)
				}
				prev = ts
			}
			// Twice: a refusal leaves the clock exhausted.
			for range 2 {
				ts, err := c.Now()
				if err == nil {
					t.Fatalf("Now() on an exhausted clock = %v, want an error", ts)
				}
				if !errors.Is(err, ErrExhausted) {
					t.Fatalf("Now() on an exhausted clock: %v, want ErrExhausted", err)
				}
			}
			disk.checkDecodable(t)
		})
	}
}

// TestRestartAfterTinyMaxOffset uses a MaxOffset of 1ns, whose default
// window (MaxOffset/2) rounds to zero: a zero window persists a bound equal
// to the wall time handed out, and a restart from it repeats timestamps.
func TestRestartAfterTinyMaxOffset(t *testing.T) {
	for _, maxOffset := range []time.Duration{1, 2, 3} {
		t.Run(maxOffset.String(), func(t *testing.T) {
			var disk recorder
			cfg := Config{StoreID: 1, MaxOffset: maxOffset, Physical: func() int64 { return 1000 }, Persist: disk.persist}
			c := newClock(t, cfg)
			var last Timestamp
			for range 3 {
				last = mustNow(t, c)
			}
			cfg.Persisted = disk.last(t)
			if ts := mustNow(t, newClock(t, cfg)); !last.Less(ts) {
				t.Fatalf("restarted from bound %d, the clock handed out %v, not after %v", cfg.Persisted, ts, last)
			}
		})
	}
}

// TestNowRange: a range is n consecutive logical values at one wall time,
// after everything handed out before, and nothing in it is handed out
// again; a range that would run past the largest logical part starts at
// the next wall time.
func TestNowRange(t *testing.T) {
	var pt manual
	pt.set(1000)
	c := newClock(t, Config{StoreID: 3, Physical: pt.now})
	before := mustNow(t, c)
	first, err := c.NowRange(100)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Timestamp{Wall: 1000, Logical: before.Logical + 1, StoreID: 3}); first != want {
		t.Fatalf("NowRange(100) = %v, want %v", first, want)
	}
	if next := mustNow(t, c); next != (Timestamp{Wall: 1000, Logical: first.Logical + 100, StoreID: 3}) {
		t.Fatalf("Now after a range of 100 from %v = %v, want the logical part after the range", first, next)
	}
	// Zero is one timestamp.
	zero, err := c.NowRange(0)
	if err != nil || zero.Logical != first.Logical+101 {
		t.Fatalf("NowRange(0) = %v, %v", zero, err)
	}

	// Near the top of the logical part: the range moves to the next wall
	// time rather than wrap.
	if err := c.Update(Timestamp{Wall: 1000, Logical: math.MaxUint32 - 5, StoreID: 2}); err != nil {
		t.Fatal(err)
	}
	fits, err := c.NowRange(5) // logicals MaxUint32-4 .. MaxUint32
	if err != nil || fits != (Timestamp{Wall: 1000, Logical: math.MaxUint32 - 4, StoreID: 3}) {
		t.Fatalf("NowRange(5) at the top = %v, %v", fits, err)
	}
	if err := c.Update(Timestamp{Wall: 1000, Logical: math.MaxUint32 - 5, StoreID: 2}); err != nil {
		t.Fatal(err)
	}
	carried, err := c.NowRange(2)
	if err != nil || carried != (Timestamp{Wall: 1001, Logical: 0, StoreID: 3}) {
		t.Fatalf("NowRange(2) past the top = %v, %v, want wall 1001 logical 0", carried, err)
	}
	if next := mustNow(t, c); next != (Timestamp{Wall: 1001, Logical: 2, StoreID: 3}) {
		t.Fatalf("Now after the carried range = %v", next)
	}

	// A range at the largest wall time that does not fit is refused.
	top := newClock(t, Config{StoreID: 1, Physical: func() int64 { return math.MaxInt64 }})
	if err := top.Update(Timestamp{Wall: math.MaxInt64, Logical: math.MaxUint32 - 2, StoreID: 2}); err != nil {
		t.Fatal(err)
	}
	if ts, err := top.NowRange(3); !errors.Is(err, ErrExhausted) {
		t.Fatalf("NowRange(3) with two timestamps left = %v, %v, want ErrExhausted", ts, err)
	}
	if ts, err := top.NowRange(2); err != nil || ts.Logical != math.MaxUint32-1 {
		t.Fatalf("NowRange(2) with two timestamps left = %v, %v", ts, err)
	}
}
