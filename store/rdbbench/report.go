package rdbbench

// The report of one run: counts, rates, errors by gRPC code and the
// latency of the operations that were answered, printed for people or as
// one JSON object (-o json) with the same content.

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Report is the result of one run. Latencies are of the operations that
// were answered (a CAS mismatch is an answer); failed ones are counted in
// Errors, by gRPC code.
type Report struct {
	Target    string   `json:"target"` // "rdb" or "etcd"
	Workload  string   `json:"workload"`
	Namespace string   `json:"namespace"`
	Endpoints []string `json:"endpoints"`
	Clients   int      `json:"clients"`
	Conns     int      `json:"conns"`
	ValueSize int      `json:"val_size"`
	KeySpace  int      `json:"key_space"`
	Batch     int      `json:"batch"`      // keys a request (rawbatchput; else 1)
	ReadRatio float64  `json:"read_ratio"` // mixed; else 1 for reads, 0 for writes
	Seed      uint64   `json:"seed"`

	Seconds       float64 `json:"seconds"`
	Ops           int64   `json:"ops"`
	OpsPerSecond  float64 `json:"ops_per_second"`
	Keys          int64   `json:"keys"`
	KeysPerSecond float64 `json:"keys_per_second"`
	Reads         int64   `json:"reads"`
	Writes        int64   `json:"writes"`
	CasMismatches int64   `json:"cas_mismatches"`
	NotFound      int64   `json:"not_found"`
	// Errors counts failed operations by gRPC code; FirstErrors holds the
	// first error of each code.
	Errors      map[string]int64  `json:"errors"`
	FirstErrors map[string]string `json:"first_errors"`

	Latency   Latency  `json:"latency"`
	Histogram []Bucket `json:"histogram"`
}

// Latency summarizes the answered operations' latencies, in milliseconds.
type Latency struct {
	Min  float64 `json:"min_ms"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p99_9_ms"`
	Max  float64 `json:"max_ms"`
}

// Bucket is one bar of the histogram: the operations that took from From
// up to To milliseconds.
type Bucket struct {
	From  float64 `json:"from_ms"`
	To    float64 `json:"to_ms"`
	Count uint64  `json:"count"`
}

// ErrorCount is the number of failed operations.
func (r *Report) ErrorCount() int64 {
	var n int64
	for _, c := range r.Errors {
		n += c
	}
	return n
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fromMs(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

// newReport fills a report's results from a run's counts.
func newReport(r Report, s *stats, elapsed time.Duration) Report {
	r.Seconds = elapsed.Seconds()
	r.Ops, r.Keys, r.Reads, r.Writes = s.ops, s.keys, s.reads, s.writes
	r.CasMismatches, r.NotFound = s.mismatches, s.notFound
	if r.Seconds > 0 {
		r.OpsPerSecond = float64(s.ops) / r.Seconds
		r.KeysPerSecond = float64(s.keys) / r.Seconds
	}
	r.Errors, r.FirstErrors = map[string]int64{}, map[string]string{}
	for code, n := range s.errors {
		r.Errors[code.String()] = n
		r.FirstErrors[code.String()] = s.firstErrorByCode[code].Error()
	}
	h := s.hist
	r.Latency = Latency{
		Min: ms(h.Min()), Mean: ms(h.Mean()), Max: ms(h.Max()),
		P50: ms(h.Percentile(0.50)), P90: ms(h.Percentile(0.90)), P99: ms(h.Percentile(0.99)), P999: ms(h.Percentile(0.999)),
	}
	r.Histogram = histogramBuckets(h)
	return r
}

// histogramBuckets is h's display: every duration recorded is counted in
// one bar. Spans counts a bucket where its middle falls, and the middle of
// the smallest or largest duration's bucket may lie outside [min, max]:
// the edges cover those middles too.
func histogramBuckets(h *Histogram) []Bucket {
	out := []Bucket{}
	if h.Count() == 0 {
		return out
	}
	lo, hi := min(h.Min(), bucketMiddle(h.Min())), max(h.Max(), bucketMiddle(h.Max()))
	for _, sp := range h.Spans(displayEdges(lo, hi)) {
		out = append(out, Bucket{From: ms(sp.From), To: ms(sp.To), Count: sp.Count})
	}
	return out
}

// displayEdges are the histogram's bar edges: the 1-2-5 steps (1µs, 2µs,
// 5µs, 10µs, ...) from the one at or below lo to the first above hi.
func displayEdges(lo, hi time.Duration) []time.Duration {
	var edges []time.Duration
	for decade := time.Microsecond; decade <= 1000*time.Second; decade *= 10 {
		for _, m := range []time.Duration{1, 2, 5} {
			e := decade * m
			switch {
			case e <= lo:
				edges = []time.Duration{e}
			case len(edges) == 0 || edges[len(edges)-1] <= hi:
				edges = append(edges, e)
			}
		}
	}
	return edges
}

// writeJSON prints v as one indented JSON document.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// writeText prints the report for people.
func writeText(w io.Writer, r Report) {
	fmt.Fprintf(w, "%s on %s, namespace %s (%s), %s over %s, %d-byte values, %s keys\n",
		r.Workload, r.Target, r.Namespace, strings.Join(r.Endpoints, ","), plural(r.Clients, "client"), plural(r.Conns, "connection"),
		r.ValueSize, group(int64(r.KeySpace)))
	fmt.Fprintf(w, "  %-15s %s in %.2fs: %s ops/s\n", "ops", group(r.Ops), r.Seconds, group(int64(r.OpsPerSecond)))
	if r.Batch > 1 {
		fmt.Fprintf(w, "  %-15s %s: %s keys/s (%d a request)\n", "keys", group(r.Keys), group(int64(r.KeysPerSecond)), r.Batch)
	}
	if r.Workload == workMixed {
		fmt.Fprintf(w, "  %-15s %s reads, %s writes\n", "mix", group(r.Reads), group(r.Writes))
	}
	if r.Writes > 0 && (r.Workload == workCas || r.Workload == workMixed) {
		fmt.Fprintf(w, "  %-15s %s\n", "cas mismatches", group(r.CasMismatches))
	}
	if r.Reads > 0 {
		fmt.Fprintf(w, "  %-15s %s\n", "not found", group(r.NotFound))
	}
	if len(r.Errors) == 0 {
		fmt.Fprintf(w, "  %-15s none\n", "errors")
	} else {
		for i, code := range slices.Sorted(maps.Keys(r.Errors)) {
			label := ""
			if i == 0 {
				label = "errors"
			}
			fmt.Fprintf(w, "  %-15s %s %s (first: %s)\n", label, code, group(r.Errors[code]), r.FirstErrors[code])
		}
	}
	if r.Ops == 0 {
		return
	}
	l := r.Latency
	fmt.Fprintf(w, "\nLatency: min %s  mean %s  max %s\n", fmtDur(l.Min), fmtDur(l.Mean), fmtDur(l.Max))
	fmt.Fprintf(w, "         p50 %s  p90 %s  p99 %s  p99.9 %s\n\n", fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.P999))
	var most uint64
	for _, b := range r.Histogram {
		most = max(most, b.Count)
	}
	for _, b := range r.Histogram {
		bar := 0
		if most > 0 {
			bar = int(float64(b.Count) / float64(most) * 40)
		}
		if bar == 0 && b.Count > 0 {
			bar = 1
		}
		fmt.Fprintf(w, "  %7s - %-7s %10s  %s\n", fmtDur(b.From), fmtDur(b.To), group(int64(b.Count)), strings.Repeat("∎", bar))
	}
}

// fmtDur writes a duration given in milliseconds with three significant
// digits: 850µs, 1.23ms, 12.3ms, 1.23s.
func fmtDur(v float64) string {
	d := fromMs(v)
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return sig3(float64(d)/float64(time.Microsecond), "µs")
	case d < time.Second:
		return sig3(v, "ms")
	}
	return sig3(d.Seconds(), "s")
}

func sig3(v float64, unit string) string {
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f%s", v, unit)
	case v < 100:
		return fmt.Sprintf("%.1f%s", v, unit)
	}
	return fmt.Sprintf("%.0f%s", v, unit)
}

// plural is "1 client", "2 clients".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return group(int64(n)) + " " + noun + "s"
}
