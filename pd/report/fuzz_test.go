package report

import (
	"encoding/binary"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/pdpb"
)

// FuzzApply: any sequence of heartbeats a store (or anyone with a store's
// certificate) sends leaves PD's copy keyed by what it holds, and a
// refused change list changes nothing.
func FuzzApply(f *testing.F) {
	s := NewSender()
	var seedInput []byte
	for i := range 3 {
		full := &pdpb.StoreHeartbeatRequest{Namespaces: []*pdpb.NamespaceApplied{{Namespace: "a", Version: uint64(i)}},
			Groups: []*pdpb.GroupStatus{{GroupId: uint64(i + 1), Namespace: "a"}}}
		req := &pdpb.StoreHeartbeatRequest{}
		s.Build(req, fillFrom(full))
		s.Acknowledge(true)
		b, _ := proto.Marshal(req)
		seedInput = binary.AppendUvarint(seedInput, uint64(len(b)))
		seedInput = append(seedInput, b...)
	}
	f.Add(seedInput)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &Receiver{}
		for len(data) > 0 {
			n, k := binary.Uvarint(data)
			if k <= 0 || n > uint64(len(data)-k) {
				return
			}
			req := &pdpb.StoreHeartbeatRequest{}
			if err := proto.Unmarshal(data[k:k+int(n)], req); err != nil {
				return
			}
			data = data[k+int(n):]
			before := len(r.Namespaces) + len(r.Groups)
			session, seq := r.session, r.Index.seq
			if !r.Apply(req) && (len(r.Namespaces)+len(r.Groups) != before || r.session != session || r.Index.seq != seq) {
				t.Fatalf("a refused heartbeat changed PD's copy")
			}
			for name, e := range r.Namespaces {
				if e == nil || e.GetNamespace() != name {
					t.Fatalf("namespace %q holds %v", name, e)
				}
			}
			for id, g := range r.Groups {
				if g == nil || g.GetGroupId() != id {
					t.Fatalf("group %d holds %v", id, g)
				}
			}
		}
	})
}
