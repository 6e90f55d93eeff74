package api

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/kvrpc"
)

func pairs(kv ...string) []*kvrpc.RawKv {
	var out []*kvrpc.RawKv
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, &kvrpc.RawKv{Key: kv[i], Value: kv[i+1]})
	}
	return out
}

func TestValidateBatch(t *testing.T) {
	big := strings.Repeat("v", MaxValueBytes)
	// 16 pairs of 1 MiB values fill the byte limit with their keys.
	var full []*kvrpc.RawKv
	for range 15 {
		full = append(full, &kvrpc.RawKv{Key: "k", Value: big})
	}
	full = append(full, &kvrpc.RawKv{Key: "k", Value: big[:MaxValueBytes-16]})
	over := append(append([]*kvrpc.RawKv{}, full...), &kvrpc.RawKv{Key: "x"})
	manyKeys := make([]string, MaxBatchKeys)
	for i := range manyKeys {
		manyKeys[i] = "k"
	}
	for _, tc := range []struct {
		name    string
		err     error
		message string // "" when valid
	}{
		{"put ok", ValidateBatchPut("logs", pairs("a", "1", "b", "")), ""},
		{"put empty", ValidateBatchPut("logs", nil), ""},
		{"put bad namespace", ValidateBatchPut("Logs", pairs("a", "1")), "namespace \"Logs\" is invalid"},
		{"put empty key", ValidateBatchPut("logs", pairs("a", "1", "", "2")), "batch entry 1: key is empty"},
		{"put oversize value", ValidateBatchPut("logs", pairs("a", big+"v")), "batch entry 0: value is"},
		{"put nil pair", ValidateBatchPut("logs", []*kvrpc.RawKv{nil}), "batch entry 0: key is empty"},
		{"put at the byte limit", ValidateBatchPut("logs", full), ""},
		{"put over the byte limit", ValidateBatchPut("logs", over), "more than 16777216 bytes (16 MiB) of keys and values (passed at entry 16)"},
		{"put too many", ValidateBatchPut("logs", make([]*kvrpc.RawKv, MaxBatchKeys+1)), "batch of 10001 keys: a batch holds at most 10000 keys"},
		{"keys ok", ValidateBatchKeys("logs", []string{"a", "a"}), ""},
		{"keys at the count limit", ValidateBatchKeys("logs", manyKeys), ""},
		{"keys too many", ValidateBatchKeys("logs", append(manyKeys, "k")), "at most 10000 keys"},
		{"keys oversize key", ValidateBatchKeys("logs", []string{"a", strings.Repeat("k", MaxKeyBytes+1)}), "batch entry 1: key is 4097 bytes"},
		{"keys empty namespace", ValidateBatchKeys("", []string{"a"}), "namespace is empty"},
	} {
		if tc.message == "" {
			if tc.err != nil {
				t.Errorf("%s: %v, want valid", tc.name, tc.err)
			}
			continue
		}
		if status.Code(tc.err) != codes.InvalidArgument || !strings.Contains(status.Convert(tc.err).Message(), tc.message) {
			t.Errorf("%s: %v, want InvalidArgument containing %q", tc.name, tc.err, tc.message)
		}
	}
}

// FuzzValidateBatch: the intake of a batch call, any request gRPC decodes
// (RawBatchPut, or the keys of RawBatchGet, RawBatchDelete and BatchGet,
// which share one wire shape). Validation never panics, answers
// InvalidArgument or nothing, and accepts exactly the batches within every
// limit.
func FuzzValidateBatch(f *testing.F) {
	for _, m := range []proto.Message{
		&kvrpc.RawBatchPutRequest{Namespace: "logs", Pairs: pairs("a", "1", "b", "2")},
		&kvrpc.RawBatchPutRequest{Namespace: "logs", Pairs: pairs("a", "1", "", "2")},
		&kvrpc.RawBatchPutRequest{Namespace: "logs", Pairs: pairs(strings.Repeat("k", MaxKeyBytes+1), "1")},
		&kvrpc.RawBatchPutRequest{Namespace: "NS", Pairs: pairs("a", "1")},
		&kvrpc.RawBatchPutRequest{Namespace: "logs"},
		&kvrpc.BatchGetRequest{Namespace: "logs", Keys: []string{"a", "b", "a"}},
		&kvrpc.BatchGetRequest{Namespace: "logs", Keys: []string{"a", ""}},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var put kvrpc.RawBatchPutRequest
		if proto.Unmarshal(data, &put) == nil {
			want := ValidNamespaceName(put.GetNamespace()) && len(put.GetPairs()) <= MaxBatchKeys
			size := 0
			for _, p := range put.GetPairs() {
				size += len(p.GetKey()) + len(p.GetValue())
				want = want && p.GetKey() != "" && len(p.GetKey()) <= MaxKeyBytes && len(p.GetValue()) <= MaxValueBytes
			}
			checkVerdict(t, ValidateBatchPut(put.GetNamespace(), put.GetPairs()), want && size <= MaxBatchBytes)
		}
		var get kvrpc.BatchGetRequest
		if proto.Unmarshal(data, &get) == nil {
			want := ValidNamespaceName(get.GetNamespace()) && len(get.GetKeys()) <= MaxBatchKeys
			size := 0
			for _, k := range get.GetKeys() {
				size += len(k)
				want = want && k != "" && len(k) <= MaxKeyBytes
			}
			checkVerdict(t, ValidateBatchKeys(get.GetNamespace(), get.GetKeys()), want && size <= MaxBatchBytes)
		}
	})
}

func checkVerdict(t *testing.T, err error, valid bool) {
	t.Helper()
	switch {
	case valid && err != nil:
		t.Fatalf("a batch within the limits refused: %v", err)
	case !valid && err == nil:
		t.Fatal("a batch past the limits accepted")
	case err != nil && status.Code(err) != codes.InvalidArgument:
		t.Fatalf("refused with %v, want InvalidArgument", err)
	}
}
