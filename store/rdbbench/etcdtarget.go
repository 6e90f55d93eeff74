package rdbbench

// The same workloads against etcd, for side-by-side runs. etcd has no
// namespaces and no modes: the namespace is a key prefix, and each call
// is the nearest etcd request:
//
//	cas          put (the default), or with --etcd-cas txn a transaction
//	             that puts if the key's mod revision is the one expected
//	get          linearizable range of one key (etcd's default read)
//	rawput       put
//	rawget       serializable range of one key (the member's own state)
//	rawbatchput  one transaction of --batch puts (etcd's --max-txn-ops,
//	             128 by default, bounds it)

import (
	"context"
	"crypto/tls"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcdTarget is one etcd client (its own gRPC connection, balanced over
// every endpoint as etcd's client does).
type etcdTarget struct {
	cli    *clientv3.Client
	prefix string
	txnCas bool
}

func dialEtcd(endpoints []string, namespace string, tlsConfig *tls.Config, txnCas bool) (*etcdTarget, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		TLS:         tlsConfig,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, err
	}
	return &etcdTarget{cli: cli, prefix: namespace + "/", txnCas: txnCas}, nil
}

// SetMode does nothing: etcd has one mode.
func (t *etcdTarget) SetMode(context.Context, string) error { return nil }

// Cas puts the value. With txnCas it puts only if the key's mod revision
// is expected (0: absent) and otherwise reads the current one, as rdb's
// CAS answers a mismatch.
func (t *etcdTarget) Cas(ctx context.Context, key, value string, expected uint64) (bool, uint64, error) {
	key = t.prefix + key
	if !t.txnCas {
		r, err := t.cli.Put(ctx, key, value)
		if err != nil {
			return false, 0, err
		}
		return true, uint64(r.Header.Revision), nil
	}
	r, err := t.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", int64(expected))).
		Then(clientv3.OpPut(key, value)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return false, 0, err
	}
	if r.Succeeded {
		return true, uint64(r.Header.Revision), nil
	}
	var current uint64
	if kvs := r.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		current = uint64(kvs[0].ModRevision)
	}
	return false, current, nil
}

func (t *etcdTarget) Get(ctx context.Context, key string) (bool, error) {
	r, err := t.cli.Get(ctx, t.prefix+key)
	if err != nil {
		return false, err
	}
	return len(r.Kvs) > 0, nil
}

func (t *etcdTarget) RawPut(ctx context.Context, key, value string) error {
	_, err := t.cli.Put(ctx, t.prefix+key, value)
	return err
}

func (t *etcdTarget) RawGet(ctx context.Context, key string) (bool, error) {
	r, err := t.cli.Get(ctx, t.prefix+key, clientv3.WithSerializable())
	if err != nil {
		return false, err
	}
	return len(r.Kvs) > 0, nil
}

func (t *etcdTarget) RawBatchPut(ctx context.Context, pairs []KV) error {
	ops := make([]clientv3.Op, len(pairs))
	for i, p := range pairs {
		ops[i] = clientv3.OpPut(t.prefix+p.Key, p.Value)
	}
	_, err := t.cli.Txn(ctx).Then(ops...).Commit()
	return err
}

func (t *etcdTarget) Close() error { return t.cli.Close() }
