package rdbbench

// A latency histogram in the manner of HdrHistogram: log-linear buckets
// that keep every recorded value to within 1/128 (0.8%) of itself, from a
// nanosecond to centuries, in a fixed array. Each client records into its
// own; the run merges them at the end.

import (
	"math"
	"math/bits"
	"time"
)

const (
	// subBits sets the precision: each power of two is split into
	// 1<<subBits buckets.
	subBits  = 7
	subCount = 1 << subBits
	// Values below 2*subCount are exact; above, a value v with its top bit
	// at position p falls in the bucket of v >> (p - subBits).
	exactBelow  = 2 * subCount
	bucketCount = exactBelow + (63-subBits)*subCount
)

// Histogram counts durations.
type Histogram struct {
	counts   [bucketCount]uint64
	n        uint64
	sum      float64 // nanoseconds
	min, max int64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram { return &Histogram{min: math.MaxInt64} }

// Record adds one duration (a negative one counts as zero).
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += float64(v)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// Merge adds every count of o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count is the number of durations recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Min is the smallest duration recorded (0 when empty).
func (h *Histogram) Min() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.min)
}

// Max is the largest duration recorded.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the average duration (0 when empty).
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Percentile returns the duration at or below which the fraction q (0 to
// 1) of the recorded durations lie, to within the bucket's precision, and
// never outside [Min, Max].
func (h *Histogram) Percentile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(i)
			mid := lo + (hi-lo)/2
			return time.Duration(min(max(mid, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// Span is a range of durations [From, To) and how many were recorded in
// it.
type Span struct {
	From, To time.Duration
	Count    uint64
}

// Spans regroups the counts into the given ascending edges: span i covers
// [edges[i], edges[i+1]). A bucket is counted in the span that holds its
// middle; durations below the first edge or from the last one on are left
// out.
func (h *Histogram) Spans(edges []time.Duration) []Span {
	if len(edges) < 2 {
		return nil
	}
	spans := make([]Span, len(edges)-1)
	for i := range spans {
		spans[i] = Span{From: edges[i], To: edges[i+1]}
	}
	j := 0
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		lo, hi := bucketRange(i)
		mid := time.Duration(lo + (hi-lo)/2)
		for j < len(spans) && mid >= spans[j].To {
			j++
		}
		if j == len(spans) {
			break
		}
		if mid >= spans[j].From {
			spans[j].Count += c
		}
	}
	return spans
}

// bucketMiddle is the middle of the bucket that holds d, where Spans
// counts it.
func bucketMiddle(d time.Duration) time.Duration {
	lo, hi := bucketRange(bucketOf(max(int64(d), 0)))
	return time.Duration(lo + (hi-lo)/2)
}

// bucketOf is the index of the bucket that holds v (v >= 0).
func bucketOf(v int64) int {
	if v < exactBelow {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - (subBits + 1) // >= 1
	top := int(v >> shift)                         // in [subCount, 2*subCount)
	return exactBelow + (shift-1)*subCount + top - subCount
}

// bucketRange is the range [lo, hi] of the values bucket i holds.
func bucketRange(i int) (lo, hi int64) {
	if i < exactBelow {
		return int64(i), int64(i)
	}
	shift := (i-exactBelow)/subCount + 1
	top := int64((i-exactBelow)%subCount + subCount)
	lo = top << shift
	return lo, lo + (1<<shift - 1)
}
