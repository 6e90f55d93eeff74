package rdbctl

// The verbs on keys: get, put, cas, del.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rdb-project/rdb/store/client"
	"github.com/rdb-project/rdb/store/cmdtree"
)

func (a *app) getCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAMESPACE KEY",
		Short: "Read a key (linearizable, with its version, in a strong namespace)",
		Long: `Read a key. get looks up the namespace's mode first: in a strong namespace it
is a linearizable read (Get) that shows the key's version; in an eventual one
it reads one store's replica (RawGet), and there are no versions. A key that
does not exist is an answer, not an error: get says so ("found": false in
JSON) and exits 0.`,
		Args: cobra.ExactArgs(2),
		RunE: a.action(func(ctx context.Context, c *client.Client, _ *cobra.Command, args []string) error {
			ns, key := args[0], args[1]
			var doc getDoc
			err := a.byMode(ctx, ns, func(mode string) error {
				doc = getDoc{Namespace: ns, Mode: mode, Key: key}
				var err error
				if mode == client.Strong {
					var r client.GetResult
					r, err = c.Get(ctx, ns, key)
					doc.Found, doc.Value, doc.Version = r.Found, r.Value, r.Version
				} else {
					doc.Value, doc.Found, err = c.RawGet(ctx, ns, key)
				}
				return err
			})
			if err != nil {
				return err
			}
			return a.print(doc, func(w io.Writer) error {
				if !doc.Found {
					_, err := fmt.Fprintf(w, "%s: not found in namespace %s\n", show(key), ns)
					return err
				}
				return cmdtree.WriteTable(w, []string{"KEY", "VERSION", "VALUE"},
					[][]string{{show(key), versionOrDash(doc.Mode, doc.Version), show(doc.Value)}})
			})
		}),
	}
}

func (a *app) putCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "put NAMESPACE KEY VALUE [KEY VALUE]...",
		Short: "Write keys of an eventual namespace (the last writer wins)",
		Long: `Write a key of an eventual namespace (RawPut): the store that takes it stamps
it with its hybrid logical clock and replicates it; the newest write of a key
wins everywhere. Several pairs are written as one batch (RawBatchPut): the
store that takes it applies all of it or none, and replicates it as one. A
strong namespace takes cas instead.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 3 || len(args)%2 == 0 {
				return fmt.Errorf("want a namespace and KEY VALUE pairs, got %d arguments", len(args))
			}
			return nil
		},
		RunE: a.action(func(ctx context.Context, c *client.Client, _ *cobra.Command, args []string) error {
			ns := args[0]
			doc := putDoc{Namespace: ns}
			var pairs []client.KV
			for i := 1; i < len(args); i += 2 {
				doc.Keys = append(doc.Keys, args[i])
				pairs = append(pairs, client.KV{Key: args[i], Value: args[i+1]})
			}
			var err error
			if len(pairs) == 1 {
				var ts client.Timestamp
				ts, err = c.RawPut(ctx, ns, pairs[0].Key, pairs[0].Value)
				doc.Timestamp, doc.LastTimestamp = viewHLC(ts), viewHLC(ts)
			} else {
				var b client.BatchWrite
				b, err = c.RawBatchPut(ctx, ns, pairs)
				doc.Timestamp, doc.LastTimestamp = viewHLC(b.First), viewHLC(b.Last)
			}
			switch {
			case errors.Is(err, client.ErrWrongMode):
				return fmt.Errorf("namespace %s is strong: put writes eventual namespaces; write it with rdbctl cas (or make it eventual: rdbctl mode %s eventual)", ns, ns)
			case len(pairs) > 1 && status.Code(err) == codes.Unimplemented:
				return fmt.Errorf("the cluster does not take several pairs in one put (RawBatchPut): put one pair at a time (%w)", err)
			case err != nil:
				return explain(err, ns, doc.Keys...)
			}
			return a.print(doc, func(w io.Writer) error {
				what := "1 key"
				if len(pairs) > 1 {
					what = fmt.Sprintf("%d keys in one batch", len(pairs))
				}
				_, err := fmt.Fprintf(w, "wrote %s to namespace %s at %s\n", what, ns, doc.Timestamp)
				return err
			})
		}),
	}
}

func (a *app) casCommand() *cobra.Command {
	var expect uint64
	c := &cobra.Command{
		Use:   "cas NAMESPACE KEY VALUE --expect VERSION",
		Short: "Compare-and-swap a key of a strong namespace",
		Long: `Write a key of a strong namespace if its version is --expect (0: if it does
not exist), through the namespace's Raft group. It prints the key's new
version. If the version is another, nothing is written: cas prints the key's
current version and value and exits 1. An eventual namespace takes put
instead.`,
		Args: cobra.ExactArgs(3),
		RunE: a.action(func(ctx context.Context, c *client.Client, _ *cobra.Command, args []string) error {
			ns, key, value := args[0], args[1], args[2]
			res, err := c.CompareAndSwap(ctx, ns, key, value, expect)
			switch {
			case errors.Is(err, client.ErrWrongMode):
				return fmt.Errorf("namespace %s is eventual: cas writes strong namespaces; write it with rdbctl put (or make it strong: rdbctl mode %s strong)", ns, ns)
			case err != nil:
				return explain(err, ns, key)
			}
			doc := casDoc{Namespace: ns, Key: key, Succeeded: res.Success, ExpectedVersion: expect, Version: res.Version, Value: res.Value}
			if res.Success {
				doc.Value = value
			}
			if err := a.print(doc, func(w io.Writer) error {
				if !res.Success {
					return nil // the error says it all
				}
				_, err := fmt.Fprintf(w, "wrote %s in namespace %s: version %d\n", show(key), ns, res.Version)
				return err
			}); err != nil {
				return err
			}
			if !res.Success {
				return mismatch("cas", ns, key, expect, res.Version != 0, res.Version, res.Value)
			}
			return nil
		}),
	}
	c.Flags().Uint64Var(&expect, "expect", 0, "the version the key must have (0: the key must not exist)")
	_ = c.MarkFlagRequired("expect")
	return c
}

func (a *app) delCommand() *cobra.Command {
	var expect uint64
	c := &cobra.Command{
		Use:   "del NAMESPACE KEY [--expect VERSION]",
		Short: "Delete a key (in a strong namespace, optionally only at a version)",
		Long: `Delete a key. del looks up the namespace's mode first: in a strong namespace
it deletes through the Raft group (Delete), only if the key's version is
--expect when given (else nothing is deleted: del prints the current version
and value and exits 1); deleting a key that does not exist changes nothing
and exits 0. In an eventual namespace it writes a delete that wins over
older writes (RawDelete); keys there have no versions, so --expect does not
apply.`,
		Args: cobra.ExactArgs(2),
		RunE: a.action(func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			ns, key := args[0], args[1]
			var doc delDoc
			applied := true // false: --expect did not match
			err := a.byMode(ctx, ns, func(mode string) error {
				doc = delDoc{Namespace: ns, Mode: mode, Key: key, ExpectedVersion: expect}
				if mode != client.Strong {
					if cmd.Flags().Changed("expect") {
						return fmt.Errorf("namespace %s is eventual: its keys have no versions, so --expect does not apply; delete without it", ns)
					}
					ts, err := c.RawDelete(ctx, ns, key)
					h := viewHLC(ts)
					doc.Deleted, doc.Timestamp = err == nil, &h
					return err
				}
				r, err := c.Delete(ctx, ns, key, expect)
				doc.Deleted, doc.Found, doc.Version, applied = r.Success && r.Found, &r.Found, r.Version, r.Success
				if !r.Success {
					doc.Value = r.Value
				}
				return err
			})
			if err != nil {
				return explain(err, ns, key)
			}
			if err := a.print(doc, func(w io.Writer) error {
				var err error
				switch {
				case doc.Timestamp != nil:
					_, err = fmt.Fprintf(w, "deleted %s from namespace %s at %s\n", show(key), ns, *doc.Timestamp)
				case doc.Deleted:
					_, err = fmt.Fprintf(w, "deleted %s from namespace %s\n", show(key), ns)
				case applied:
					_, err = fmt.Fprintf(w, "%s: not found in namespace %s; nothing to delete\n", show(key), ns)
				}
				return err
			}); err != nil {
				return err
			}
			if !applied {
				return mismatch("del", ns, key, expect, *doc.Found, doc.Version, doc.Value)
			}
			return nil
		}),
	}
	c.Flags().Uint64Var(&expect, "expect", 0, "delete only if the key is at this version (strong namespaces; 1 or more)")
	c.PreRunE = func(cmd *cobra.Command, _ []string) error {
		if cmd.Flags().Changed("expect") && expect == 0 {
			return errors.New("--expect must be a version, 1 or more (without --expect, any version is deleted)")
		}
		return nil
	}
	return c
}

// mismatch is the error of a cas or del whose expected version is not
// the key's: what the key holds now.
func mismatch(verb, ns, key string, expect uint64, found bool, version uint64, value string) error {
	what := fmt.Sprintf("%s not applied: key %s in namespace %s", verb, strconv.Quote(key), ns)
	switch {
	case !found:
		return fmt.Errorf("%s does not exist (--expect %d)", what, expect)
	case expect == 0:
		return fmt.Errorf("%s exists, at version %d with value %s (--expect 0: it must not exist)", what, version, brief(value))
	default:
		return fmt.Errorf("%s is at version %d, not %d (value %s)", what, version, expect, brief(value))
	}
}
