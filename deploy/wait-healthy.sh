#!/usr/bin/env bash
# Waits until every container of the demo cluster reports healthy (its
# grpc.health.v1 check passes), printing the states as they change; exits
# non-zero after a bound. Run from deploy/ (as `make demo` does).
#
#   deploy/wait-healthy.sh [SECONDS]      (default 120)
#
# COMPOSE names the compose command ("docker compose" or docker-compose).
set -euo pipefail
cd "$(dirname "$0")"

COMPOSE="${COMPOSE:-$(docker compose version >/dev/null 2>&1 && echo 'docker compose' || echo docker-compose)}"
limit="${1:-120}"
start=$SECONDS
last=""
while :; do
	ids=$($COMPOSE ps -q)
	states=""
	[ -n "$ids" ] && states=$(docker inspect --format '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' $ids | sed 's|^/||' | sort)
	if [ "$states" != "$last" ]; then
		echo "after $((SECONDS - start))s:"
		echo "$states" | sed 's/^/  /'
		last="$states"
	fi
	total=$(echo "$ids" | grep -c . || true)
	healthy=$(echo "$states" | grep -c ' healthy$' || true)
	if [ "$total" -gt 0 ] && [ "$healthy" -eq "$total" ]; then
		echo "all $total containers healthy after $((SECONDS - start))s"
		exit 0
	fi
	if [ $((SECONDS - start)) -ge "$limit" ]; then
		echo "not healthy after ${limit}s; see: $COMPOSE logs" >&2
		exit 1
	fi
	sleep 1
done
