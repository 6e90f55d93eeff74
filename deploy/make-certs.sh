#!/usr/bin/env bash
# Makes the TLS demo cluster's certificates with `pdctl cert`, once: a CA,
# pd1-pd3 and store 1-3 (named as the containers know each other, and
# 127.0.0.1/localhost for the published ports), an admin and a client.
#
#   deploy/make-certs.sh PDCTL DIR      (make demo-tls runs it)
set -euo pipefail
pdctl="$1"
dir="$2"
if [ -f "$dir/ca.crt" ]; then
	echo "certificates already in $dir"
	exit 0
fi
"$pdctl" cert create-ca --certs-dir "$dir" >/dev/null
for n in 1 2 3; do
	"$pdctl" cert create-pd --certs-dir "$dir" --name "pd$n" --host "pd$n" --host localhost --host 127.0.0.1 >/dev/null
	"$pdctl" cert create-store --certs-dir "$dir" --id "$n" --host "store$n" --host localhost --host 127.0.0.1 >/dev/null
done
"$pdctl" cert create-client --certs-dir "$dir" --admin >/dev/null
"$pdctl" cert create-client --certs-dir "$dir" --name app >/dev/null
echo "certificates made in $dir"
