#!/usr/bin/env bash
# Runs one placement driver and three PD-mode stores on loopback in the
# foreground, with all data under one directory. Ctrl-C stops them all.
#
#   scripts/run-local.sh [DATA_DIR]     (default: ./data)
set -euo pipefail

BIN="${BIN:-$(cd "$(dirname "$0")/.." && pwd)/bin}"
DATA="${1:-${DATA:-./data}}"
PD_CLIENT="${PD_CLIENT:-127.0.0.1:2379}"
PD_PEER="${PD_PEER:-127.0.0.1:2380}"
STORE_PORTS=(${STORE_PORTS:-50051 50052 50053})
LOG_LEVEL="${LOG_LEVEL:-info}"

for b in pd-server rdb-server pdctl; do
	if [ ! -x "$BIN/$b" ]; then
		echo "missing $BIN/$b: run 'make build' first" >&2
		exit 1
	fi
done
mkdir -p "$DATA"

pids=()
stop() {
	trap - INT TERM EXIT
	echo
	echo "stopping..."
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo "stopped; data kept in $DATA"
	exit 0
}
trap stop INT TERM EXIT

"$BIN/pd-server" --name pd1 --data-dir "$DATA/pd1" \
	--client-urls "http://$PD_CLIENT" --peer-urls "http://$PD_PEER" \
	--log-level "$LOG_LEVEL" >"$DATA/pd1.log" 2>&1 &
pids+=($!)

for i in 0 1 2; do
	id=$((i + 1))
	"$BIN/rdb-server" --store-id "$id" --addr "127.0.0.1:${STORE_PORTS[$i]}" \
		--data-dir "$DATA/store$id" --pd "$PD_CLIENT" \
		--namespace-mode logs=eventual --log-level "$LOG_LEVEL" >"$DATA/store$id.log" 2>&1 &
	pids+=($!)
done

# Wait until every store has registered and PD sees it up.
for _ in $(seq 1 100); do
	up=$("$BIN/pdctl" --pd "$PD_CLIENT" store list -o json 2>/dev/null | grep -o '"up": *true' | wc -l || true)
	[ "$up" -ge 3 ] && break
	sleep 0.2
done

cat <<MSG
rdb is running: one placement driver and three stores (logs in $DATA/*.log)

  placement driver   $PD_CLIENT
  stores             127.0.0.1:${STORE_PORTS[0]}  127.0.0.1:${STORE_PORTS[1]}  127.0.0.1:${STORE_PORTS[2]}

Try:
  bin/pdctl namespace list
  bin/pdctl namespace set logs strong --wait
  grpcurl -plaintext 127.0.0.1:${STORE_PORTS[1]} raftpb.RaftService/ListNamespaceModes
  grpcurl -plaintext -d '{"namespace":"default","key":"a","value":"b","expected_version":0}' 127.0.0.1:${STORE_PORTS[0]} kvrpc.KvCas/CompareAndSwap
  grpcurl -plaintext -d '{"namespace":"default","key":"a"}' 127.0.0.1:${STORE_PORTS[2]} kvrpc.KvCas/Get
  bin/rdbctl --endpoints 127.0.0.1:${STORE_PORTS[1]} get default a
  bin/pdctl store list

Ctrl-C stops everything.
MSG

# Run until Ctrl-C (a process that exits is reported; the rest go on).
while true; do
	wait -n "${pids[@]}" 2>/dev/null || true
	alive=0
	for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
	echo "a process exited ($alive of ${#pids[@]} still running); see $DATA/*.log" >&2
	[ "$alive" -eq 0 ] && exit 1
	sleep 1
done
