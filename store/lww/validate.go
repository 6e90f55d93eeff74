package lww

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/api"
)

// ErrInvalid is wrapped by every error about a malformed namespace name,
// key, value or record, local or received. The limits are api's, the one
// definition every part of rdb checks against.
var ErrInvalid = errors.New("lww: invalid argument")

// validNamespace checks a namespace name (api.ValidNamespaceName). Such a
// name never contains '/', which keys.LWWKey relies on.
func validNamespace(ns string) error {
	if !api.ValidNamespaceName(ns) {
		return fmt.Errorf("%w: namespace name %q: use 1 to %d characters of a-z, 0-9, '_' and '-'", ErrInvalid, truncate(ns), api.MaxNamespaceLen)
	}
	return nil
}

func validKey(key []byte) error {
	if len(key) == 0 || len(key) > api.MaxKeyBytes {
		return fmt.Errorf("%w: key is %d bytes, want 1 to %d", ErrInvalid, len(key), api.MaxKeyBytes)
	}
	return nil
}

func validValue(value []byte) error {
	if len(value) > api.MaxValueBytes {
		return fmt.Errorf("%w: value is %d bytes, above the %d-byte limit", ErrInvalid, len(value), api.MaxValueBytes)
	}
	return nil
}

// validRecord checks one record of an eventual namespace.
func validRecord(r *storepb.LWWRecord) error {
	if err := api.CheckRecord(r); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// validRecords checks a namespace name and its records.
func validRecords(ns string, recs []*storepb.LWWRecord) error {
	if err := validNamespace(ns); err != nil {
		return err
	}
	for i, r := range recs {
		if err := validRecord(r); err != nil {
			return fmt.Errorf("namespace %q record %d: %w", ns, i, err)
		}
	}
	return nil
}

// ValidateReplicateBatch checks every namespace name and record of a
// batch. A batch with one bad record is refused whole.
func ValidateReplicateBatch(b *storepb.ReplicateBatch) error {
	if b == nil {
		return fmt.Errorf("%w: nil batch", ErrInvalid)
	}
	for _, nr := range b.Namespaces {
		if nr == nil {
			return fmt.Errorf("%w: nil namespace group", ErrInvalid)
		}
		if err := validRecords(nr.Namespace, nr.Records); err != nil {
			return err
		}
		if nr.Unit && len(nr.Records) > api.MaxBatchKeys {
			return fmt.Errorf("%w: namespace %q: a unit of %d records, above %d", ErrInvalid, nr.Namespace, len(nr.Records), api.MaxBatchKeys)
		}
	}
	return nil
}

// DecodeReplicateBatch unmarshals and validates a ReplicateBatch from the
// wire. It never panics; every error wraps ErrInvalid.
func DecodeReplicateBatch(b []byte) (*storepb.ReplicateBatch, error) {
	batch := &storepb.ReplicateBatch{}
	if err := proto.Unmarshal(b, batch); err != nil {
		return nil, fmt.Errorf("%w: replicate batch: %w", ErrInvalid, err)
	}
	if err := ValidateReplicateBatch(batch); err != nil {
		return nil, err
	}
	return batch, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
