package client

// Scans as iterators over pages: Scan and RawScan share the paging.

import (
	"context"
	"iter"
	"unicode/utf8"

	"google.golang.org/grpc"

	"github.com/rdb-project/rdb/store/api"
)

// ScanOption tunes a scan.
type ScanOption func(*scanOptions)

type scanOptions struct {
	pageSize uint32
	limit    int
}

// PageSize sets how many keys each call of a scan asks for (default
// api.DefaultScan, at most api.MaxScan).
func PageSize(n uint32) ScanOption { return func(o *scanOptions) { o.pageSize = n } }

// Limit stops a scan after n keys (0: no limit).
func Limit(n int) ScanOption { return func(o *scanOptions) { o.limit = n } }

// PrefixEnd returns the end of the range of the keys that start with
// prefix: the scan of [prefix, PrefixEnd(prefix)) returns exactly them.
// It is "" (to the end) when no key follows them all.
func PrefixEnd(prefix string) string {
	for len(prefix) > 0 {
		r, size := utf8.DecodeLastRuneInString(prefix)
		if r == utf8.RuneError && size == 1 {
			// Not UTF-8 (keys are): the next byte value ends the range.
			b := prefix[len(prefix)-1]
			prefix = prefix[:len(prefix)-1]
			if b < 0xff {
				return prefix + string([]byte{b + 1})
			}
			continue
		}
		prefix = prefix[:len(prefix)-size]
		switch {
		case r == utf8.MaxRune:
			continue // nothing follows it: carry to the rune before
		case r == 0xD7FF:
			r = 0xE000 // past the surrogates, which UTF-8 does not encode
		default:
			r++
		}
		return prefix + string(r)
	}
	return ""
}

// page reads one page from start: the keys and whether more follow.
type page func(ctx context.Context, st *stubs, start string, limit uint32, opts ...grpc.CallOption) ([]KV, bool, error)

// pages runs a scan: one call per page, each retried as a read, the next
// starting right after the last key returned.
func pages(ctx context.Context, c *Client, o *op, start, end string, opts []ScanOption, read page) iter.Seq2[KV, error] {
	so := scanOptions{pageSize: api.DefaultScan}
	for _, opt := range opts {
		opt(&so)
	}
	return func(yield func(KV, error) bool) {
		if _, err := api.ValidateScan(o.ns, start, end, so.pageSize); err != nil {
			yield(KV{}, invalid(o, err))
			return
		}
		from, seen := start, 0
		for {
			limit := so.pageSize
			if so.limit > 0 {
				limit = uint32(min(int(limit), so.limit-seen))
			}
			type result struct {
				kvs  []KV
				more bool
			}
			res, err := call(ctx, c, o, func(ctx context.Context, st *stubs, copts ...grpc.CallOption) (result, error) {
				kvs, more, err := read(ctx, st, from, limit, copts...)
				return result{kvs, more}, err
			})
			if err != nil {
				yield(KV{}, err)
				return
			}
			for _, kv := range res.kvs {
				if !yield(kv, nil) {
					return
				}
			}
			seen += len(res.kvs)
			if !res.more || len(res.kvs) == 0 || (so.limit > 0 && seen >= so.limit) {
				return
			}
			// The smallest key after the last one.
			from = res.kvs[len(res.kvs)-1].Key + "\x00"
			if end != "" && from >= end {
				return
			}
		}
	}
}
