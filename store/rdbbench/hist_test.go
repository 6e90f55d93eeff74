package rdbbench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/rdb-project/rdb/store/testseed"
)

// TestBucketsHoldTheirValues: every value falls in a bucket whose range
// holds it and is at most 1/128 of it wide, and buckets are in value order.
func TestBucketsHoldTheirValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.For(t, 11), 0))
	values := []int64{0, 1, 255, 256, 257, 511, 512, 1 << 20, 1<<20 + 1, math.MaxInt64, math.MaxInt64 - 1}
	for range 100000 {
		values = append(values, rng.Int64N(1<<uint(rng.IntN(62)+1)))
	}
	for _, v := range values {
		i := bucketOf(v)
		if i < 0 || i >= bucketCount {
			t.Fatalf("value %d: bucket %d out of [0, %d)", v, i, bucketCount)
		}
		lo, hi := bucketRange(i)
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket %d, whose range is [%d, %d]", v, i, lo, hi)
		}
		if float64(hi-lo) > float64(v)/subCount {
			t.Fatalf("value %d: bucket [%d, %d] is wider than 1/%d of it", v, lo, hi, subCount)
		}
		if i+1 < bucketCount {
			if next, _ := bucketRange(i + 1); next != hi+1 {
				t.Fatalf("bucket %d ends at %d, bucket %d starts at %d", i, hi, i+1, next)
			}
		}
	}
}

// TestPercentilesOfKnownInputs compares the histogram's percentiles with
// the exact ones of the same durations.
func TestPercentilesOfKnownInputs(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.For(t, 12), 0))
	cases := map[string][]time.Duration{
		"one value":      {3 * time.Millisecond},
		"1µs to 100ms":   spread(100000, func(i int) time.Duration { return time.Duration(i+1) * time.Microsecond }),
		"log-normal":     spread(50000, func(int) time.Duration { return time.Duration(math.Exp(rng.NormFloat64() + 14)) }),
		"two clusters":   spread(10000, func(i int) time.Duration { return time.Duration(1+i%2*999) * time.Millisecond }),
		"small integers": spread(1000, func(i int) time.Duration { return time.Duration(i % 200) }),
	}
	for name, ds := range cases {
		t.Run(name, func(t *testing.T) {
			h := NewHistogram()
			for _, d := range ds {
				h.Record(d)
			}
			sorted := slices.Clone(ds)
			slices.Sort(sorted)
			if h.Count() != uint64(len(ds)) || h.Min() != sorted[0] || h.Max() != sorted[len(sorted)-1] {
				t.Fatalf("count %d min %v max %v, want %d %v %v", h.Count(), h.Min(), h.Max(), len(ds), sorted[0], sorted[len(sorted)-1])
			}
			var sum time.Duration
			for _, d := range ds {
				sum += d
			}
			if mean := sum / time.Duration(len(ds)); absDiff(h.Mean(), mean) > mean/1000+1 {
				t.Fatalf("mean %v, want %v", h.Mean(), mean)
			}
			prev := time.Duration(0)
			for _, q := range []float64{0, 0.1, 0.5, 0.9, 0.99, 0.999, 1} {
				exact := sorted[max(int(math.Ceil(q*float64(len(sorted))))-1, 0)]
				got := h.Percentile(q)
				if absDiff(got, exact) > exact/(2*subCount)+1 {
					t.Errorf("p%v = %v, want %v (within 1/%d)", q*100, got, exact, 2*subCount)
				}
				if got < prev || got < h.Min() || got > h.Max() {
					t.Errorf("p%v = %v: out of order (previous %v, min %v, max %v)", q*100, got, prev, h.Min(), h.Max())
				}
				prev = got
			}
		})
	}
}

// TestMergeAndSpans: merging two halves gives the histogram of the whole,
// and the spans of the display count every duration once.
func TestMergeAndSpans(t *testing.T) {
	whole, a, b := NewHistogram(), NewHistogram(), NewHistogram()
	for i := range 20000 {
		d := time.Duration(i*37%20000+1) * time.Microsecond
		whole.Record(d)
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(b)
	if *a != *whole {
		t.Fatalf("merged halves differ from the whole: count %d/%d min %v/%v max %v/%v", a.Count(), whole.Count(), a.Min(), whole.Min(), a.Max(), whole.Max())
	}
	edges := displayEdges(whole.Min(), whole.Max())
	if edges[0] > whole.Min() || edges[len(edges)-1] <= whole.Max() {
		t.Fatalf("edges %v do not cover [%v, %v]", edges, whole.Min(), whole.Max())
	}
	var n uint64
	for _, s := range whole.Spans(edges) {
		n += s.Count
	}
	if n != whole.Count() {
		t.Fatalf("spans count %d durations, want %d", n, whole.Count())
	}
	// [1µs, 2µs) holds 1µs alone; [10ms, 20ms) the 10,000 from 10ms on.
	spans := whole.Spans([]time.Duration{time.Microsecond, 2 * time.Microsecond, 10 * time.Millisecond, 20 * time.Millisecond})
	if spans[0].Count != 1 || spans[2].Count < 9900 || spans[2].Count > 10100 {
		t.Fatalf("spans %+v", spans)
	}
}

func spread(n int, f func(i int) time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func absDiff(a, b time.Duration) time.Duration {
	if a > b {
		return a - b
	}
	return b - a
}

// TestDisplayCountsEveryDuration: the report's bars count every duration
// recorded, including the smallest and largest, whose buckets' middles
// may lie outside [min, max] (CI once saw 299 of 300 operations counted).
func TestDisplayCountsEveryDuration(t *testing.T) {
	rng := rand.New(rand.NewPCG(testseed.For(t, 13), 0))
	for range 2000 {
		h := NewHistogram()
		n := 1 + rng.IntN(5)
		for range n {
			// From a microsecond to about ten seconds, spread over the decades.
			h.Record(time.Duration(math.Pow(10, 3+7*rng.Float64())))
		}
		var counted uint64
		for _, b := range histogramBuckets(h) {
			counted += b.Count
		}
		if counted != h.Count() {
			t.Fatalf("the bars count %d of %d durations (min %v, max %v)", counted, h.Count(), h.Min(), h.Max())
		}
	}
}
