package store

import (
	"github.com/rdb-project/rdb/pd/report"
	"github.com/rdb-project/rdb/proto/pdpb"
)

// WholeReport is s's report as a whole report would give it now, indexed
// as PD indexes it; it leaves the changes the next heartbeat is to look
// at as they are.
func WholeReport(s *Store) report.Index {
	req := &pdpb.StoreHeartbeatRequest{}
	report.NewSender().Build(req, func(b *report.Builder) {
		for _, rec := range s.table.Rows() {
			s.reportRow(b, rec)
		}
	})
	var r report.Receiver
	r.Apply(req)
	return r.Index
}
