package clusterid

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestInterceptorsNameTheCluster: the client interceptors send the id in
// decimal, and nothing while the caller does not know it.
func TestInterceptorsNameTheCluster(t *testing.T) {
	var id uint64
	sent := func() []string {
		var got metadata.MD
		invoker := func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
			got, _ = metadata.FromOutgoingContext(ctx)
			return nil
		}
		if err := UnaryClientInterceptor(func() uint64 { return id })(context.Background(), "/m", nil, nil, nil, invoker); err != nil {
			t.Fatal(err)
		}
		var streamed metadata.MD
		streamer := func(ctx context.Context, _ *grpc.StreamDesc, _ *grpc.ClientConn, _ string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
			streamed, _ = metadata.FromOutgoingContext(ctx)
			return nil, nil
		}
		if _, err := StreamClientInterceptor(func() uint64 { return id })(context.Background(), nil, nil, "/m", streamer); err != nil {
			t.Fatal(err)
		}
		if a, b := got.Get(MetadataKey), streamed.Get(MetadataKey); strings.Join(a, ",") != strings.Join(b, ",") {
			t.Fatalf("unary sends %v, stream %v", a, b)
		}
		return got.Get(MetadataKey)
	}
	if got := sent(); len(got) != 0 {
		t.Fatalf("a caller that knows no cluster sent %v", got)
	}
	id = 18446744073709551615
	if got := sent(); len(got) != 1 || got[0] != "18446744073709551615" {
		t.Fatalf("sent %v, want the id in decimal", got)
	}
}

// TestCheckIncoming: the server's rules.
func TestCheckIncoming(t *testing.T) {
	named := func(v ...string) context.Context {
		md := metadata.MD{}
		for _, s := range v {
			md.Append(MetadataKey, s)
		}
		return metadata.NewIncomingContext(context.Background(), md)
	}
	for _, tc := range []struct {
		name         string
		ctx          context.Context
		own          uint64
		allowMissing bool
		want         codes.Code
		mismatch     bool
	}{
		{"the server's own cluster", named("7"), 7, false, codes.OK, false},
		{"another cluster", named("8"), 7, true, codes.FailedPrecondition, true},
		{"no cluster where one is needed", named(), 7, false, codes.FailedPrecondition, true},
		{"no cluster where none is needed (a join)", named(), 7, true, codes.OK, false},
		{"no cluster, the server knows none", named(), 0, false, codes.OK, false},
		{"a cluster, the server knows none yet", named("8"), 0, true, codes.Unavailable, false},
		{"a malformed id", named("x"), 7, true, codes.InvalidArgument, false},
		{"id 0", named("0"), 7, true, codes.InvalidArgument, false},
		{"two ids", named("7", "7"), 7, true, codes.InvalidArgument, false},
	} {
		err := CheckIncoming(tc.ctx, tc.own, "store 1", "why", tc.allowMissing)
		if status.Code(err) != tc.want || IsMismatch(err) != tc.mismatch {
			t.Errorf("%s: %v, want %v (mismatch %v)", tc.name, err, tc.want, tc.mismatch)
		}
	}
	err := CheckIncoming(named("8"), 7, "store 1", "a store of another cluster", false)
	if msg := status.Convert(err).Message(); msg != "store 1 belongs to cluster 7; the caller to cluster 8: a store of another cluster" {
		t.Fatalf("message %q", msg)
	}
	if server, caller := MismatchIDs(err); server != 7 || caller != 8 {
		t.Fatalf("MismatchIDs = %d, %d", server, caller)
	}
}

func TestNewEncodeDecode(t *testing.T) {
	seen := map[uint64]bool{}
	for range 100 {
		id := New()
		if id == 0 || seen[id] {
			t.Fatalf("New gave %d again or 0", id)
		}
		seen[id] = true
		if got, err := Decode(Encode(id)); err != nil || got != id {
			t.Fatalf("Decode(Encode(%d)) = %d, %v", id, got, err)
		}
		if got, err := Parse(String(id)); err != nil || got != id {
			t.Fatalf("Parse(String(%d)) = %d, %v", id, got, err)
		}
	}
	for _, b := range [][]byte{nil, make([]byte, 8), make([]byte, 9)} {
		if _, err := Decode(b); err == nil {
			t.Fatalf("Decode(%x) succeeded", b)
		}
	}
}
