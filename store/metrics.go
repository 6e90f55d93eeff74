package store

// Metrics and profiling: a Prometheus registry per store, exposed with
// pprof on --metrics-addr (off by default).

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/store/api"
)

type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(s *Store) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rdb_grpc_requests_total", Help: "gRPC requests served, by method and status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rdb_grpc_request_seconds", Help: "gRPC request latency, by method.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"method"}),
	}
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	m.reg.MustRegister(
		m.requests, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		counter("rdb_raft_rounds_total", "Raft loop rounds that had work.", func() uint64 { return s.raft.Stats().Rounds }),
		counter("rdb_raft_synced_batches_total", "Raft persist batches committed with an fsync.", func() uint64 { return s.raft.Stats().SyncedBatches }),
		counter("rdb_raft_entries_written_total", "Raft log entries persisted.", func() uint64 { return s.raft.Stats().EntriesWritten }),
		counter("rdb_raft_entries_applied_total", "Raft entries applied.", func() uint64 { return s.raft.Stats().EntriesApplied }),
		counter("rdb_raft_snapshots_sent_total", "Raft snapshots sent to catching-up stores.", func() uint64 { return s.raft.Stats().SnapshotsSent }),
		counter("rdb_raft_read_index_total", "ReadIndex requests issued (each serves a batch of reads).", func() uint64 { return s.raft.Stats().ReadIndexes }),
		counter("rdb_raft_reads_total", "Linearizable reads served through ReadIndex.", func() uint64 { return s.raft.Stats().Reads }),
		counter("rdb_lww_pushed_total", "Eventual records pushed to peers.", func() uint64 { return s.lww.Stats().Pushed }),
		counter("rdb_lww_dropped_total", "Eventual records not pushed (left to anti-entropy).", func() uint64 { return s.lww.Stats().Dropped }),
		counter("rdb_lww_received_total", "Eventual records received from peers.", func() uint64 { return s.lww.Stats().Received }),
		counter("rdb_lww_refused_total", "Eventual records refused: timestamp too far ahead.", func() uint64 { return s.lww.Stats().Refused }),
		counter("rdb_lww_repaired_total", "Eventual records repaired by anti-entropy.", func() uint64 { return s.lww.Stats().Repaired }),
		counter("rdb_lww_repair_sent_total", "Eventual records sent to peers by anti-entropy.", func() uint64 { return s.lww.Stats().RepairSent }),
		counter("rdb_lww_anti_entropy_rounds_total", "Anti-entropy rounds completed with a peer.", func() uint64 { return s.lww.Stats().AntiEntropyRounds }),
		counter("rdb_lww_tombstones_collected_total", "Eventual tombstones collected after the grace period.", func() uint64 { return s.lww.Stats().Collected }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rdb_namespaces", Help: "Namespaces in the mode table."},
			func() float64 { return float64(len(s.table.List())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rdb_namespaces_switching", Help: "Namespaces whose mode switch is under way on this store."},
			func() float64 {
				n := 0
				for _, rec := range s.table.List() {
					if s.namespaceState(rec) == api.StateSwitching {
						n++
					}
				}
				return float64(n)
			}),
	)
	return m
}

// unary records every client call's outcome and latency.
func (m *metrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	m.latency.WithLabelValues(info.FullMethod).Observe(time.Since(start).Seconds())
	m.requests.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return resp, err
}

// serveDebug serves /metrics and /debug/pprof on addr until the store
// stops.
func (s *Store) serveDebug(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("metrics server", zap.Error(err))
		}
	}()
	go func() {
		defer s.wg.Done()
		<-s.ctx.Done()
		_ = srv.Close()
	}()
	s.log.Info("serving metrics and pprof", zap.String("addr", lis.Addr().String()))
	return nil
}
