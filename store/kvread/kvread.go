// Package kvread reads values and key ranges from the store's pebble DB,
// or from an indexed batch that holds writes not yet committed, the two
// ways every part of the store reads its own state.
package kvread

import (
	"bytes"
	"errors"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rdb-project/rdb/store/keys"
)

// Get returns a copy of the value at key, and whether there is one.
func Get(r pebble.Reader, key []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	return out, true, closer.Close()
}

// ScanPrefix calls fn with every key and value under prefix, in key order;
// both are valid only during the call. An error from fn stops the scan
// and is returned.
func ScanPrefix(r pebble.Reader, prefix []byte, fn func(k, v []byte) error) error {
	return Scan(r, prefix, keys.PrefixEnd(prefix), fn)
}

// Scan calls fn for every key in [lower, upper), in order; fn's arguments
// are valid only during the call.
func Scan(r pebble.Reader, lower, upper []byte, fn func(k, v []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		if err := fn(it.Key(), v); err != nil {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}

// SeekGet reads key through an open iterator, as Get reads it: a copy of
// its value, and whether it exists. Reads of increasing keys through one
// iterator move forward through the blocks they need, where each Get sets
// up an iterator through every level of the LSM (start-up, which loads
// 100,000 groups in order).
func SeekGet(it *pebble.Iterator, key []byte) ([]byte, bool, error) {
	if !it.SeekGE(key) || !bytes.Equal(it.Key(), key) {
		return nil, false, it.Error()
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return nil, false, err
	}
	return bytes.Clone(v), true, nil
}
