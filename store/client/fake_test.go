package client_test

// A fake store: a real gRPC server on loopback serving the client APIs with
// answers a test scripts, to drive the client through failures a real
// cluster cannot produce on demand (a connection that breaks after the
// request arrived, a store that never answers) and the batch calls.

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/proto/kvrpc"
	"github.com/rdb-project/rdb/proto/raftpb"
	"github.com/rdb-project/rdb/store/testport"
)

// handler answers one call: method is the short RPC name
// ("CompareAndSwap"). Returning nil, nil lets the real (Unimplemented)
// service answer.
type handler func(ctx context.Context, method string, req any) (any, error)

type fake struct {
	kvrpc.UnimplementedKvCasServer
	kvrpc.UnimplementedKvRawServer
	raftpb.UnimplementedRaftServiceServer

	addr string
	srv  *grpc.Server

	mu     sync.Mutex
	handle handler
	calls  []string
}

// startFake serves on a free loopback port until the test ends.
func startFake(t *testing.T, h handler) *fake {
	t.Helper()
	addr, err := testport.Free()
	if err != nil {
		t.Fatal(err)
	}
	f := &fake{addr: addr, handle: h}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = grpc.NewServer(grpc.UnaryInterceptor(f.intercept))
	kvrpc.RegisterKvCasServer(f.srv, f)
	kvrpc.RegisterKvRawServer(f.srv, f)
	raftpb.RegisterRaftServiceServer(f.srv, f)
	go func() { _ = f.srv.Serve(lis) }()
	t.Cleanup(f.srv.Stop)
	return f
}

func (f *fake) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	f.mu.Lock()
	f.calls = append(f.calls, method)
	h := f.handle
	f.mu.Unlock()
	if h != nil {
		resp, err := h(ctx, method, req)
		if resp != nil || err != nil {
			return resp, err
		}
	}
	return next(ctx, req)
}

// count is how many calls of method the fake received ("" for all).
func (f *fake) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range f.calls {
		if method == "" || m == method {
			n++
		}
	}
	return n
}

// sendLeader names the namespace's leader in the answer, as a store does.
func sendLeader(ctx context.Context, addr string) {
	_ = grpc.SetHeader(ctx, metadata.Pairs("rdb-leader", addr))
}

// deadAddr is a loopback address nobody listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	addr, err := testport.Free()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// unimplemented reports whether err is the store's answer to an RPC it
// does not serve yet.
func unimplemented(err error) bool { return status.Code(err) == codes.Unimplemented }
