package lww

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/rdb-project/rdb/proto/storepb"
	"github.com/rdb-project/rdb/store/hlc"
)

// Limits every record is checked against, local or received.
const (
	MaxNamespaceLen = 64
	MaxKeyBytes     = 4096
	MaxValueBytes   = 1 << 20
)

// ErrInvalid is wrapped by every error about a malformed namespace name,
// key, value or record, local or received.
var ErrInvalid = errors.New("lww: invalid argument")

// validNamespace checks a namespace name: 1 to 64 characters of a-z, 0-9,
// '_' and '-'. Such a name never contains '/', which keys.LWWKey relies on.
func validNamespace(ns string) error {
	if len(ns) == 0 || len(ns) > MaxNamespaceLen {
		return fmt.Errorf("%w: namespace name is %d bytes, want 1 to %d", ErrInvalid, len(ns), MaxNamespaceLen)
	}
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return fmt.Errorf("%w: namespace name %q has %q: use a-z, 0-9, '_' and '-'", ErrInvalid, truncate(ns), c)
		}
	}
	return nil
}

func validKey(key []byte) error {
	if len(key) == 0 || len(key) > MaxKeyBytes {
		return fmt.Errorf("%w: key is %d bytes, want 1 to %d", ErrInvalid, len(key), MaxKeyBytes)
	}
	return nil
}

func validValue(value []byte) error {
	if len(value) > MaxValueBytes {
		return fmt.Errorf("%w: value is %d bytes, above the %d-byte limit", ErrInvalid, len(value), MaxValueBytes)
	}
	return nil
}

// validRecord checks one record of an eventual namespace.
func validRecord(r *storepb.LWWRecord) error {
	if r == nil {
		return fmt.Errorf("%w: nil record", ErrInvalid)
	}
	if err := validKey(r.Key); err != nil {
		return err
	}
	if err := validValue(r.Value); err != nil {
		return fmt.Errorf("key %q: %w", truncate(string(r.Key)), err)
	}
	if r.Ts == nil || hlc.FromProto(r.Ts).IsZero() {
		return fmt.Errorf("%w: key %q has no timestamp", ErrInvalid, truncate(string(r.Key)))
	}
	if r.Tombstone && len(r.Value) > 0 {
		return fmt.Errorf("%w: key %q is a tombstone with a %d-byte value", ErrInvalid, truncate(string(r.Key)), len(r.Value))
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
