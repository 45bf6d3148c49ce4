#!/usr/bin/env bash
# REST benchmark (make bench-rest): one lbd storage node serving a tenant's
# memcached port and its REST API; internal/restload drives both in the same
# run with the same keys, connections and closed loop, and prints ops/s,
# p50/p99 and the ratios (goal: REST GET >= 0.5x memcached get). lbd runs
# as root in a network namespace of its own (lbdrest-bench-<pid>), removed
# on exit. Extra arguments go to restload (see -help).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
GO="${GO:-go}"

if [ "$(id -u)" -ne 0 ]; then
	echo "bench-rest: needs root (network namespace)" >&2
	exit 1
fi
tmp="$(mktemp -d)"
ns="lbdrest-bench-$$"
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
"$GO" build -o "$tmp/lbd" ./cmd/lbd
"$GO" build -o "$tmp/lbctl" ./cmd/lbctl
"$GO" build -o "$tmp/restload" ./internal/restload/cmd/restload
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" addr add 10.98.0.11/32 dev lo
cat >"$tmp/lbd.yaml" <<YAML
nodes:
  - {name: st1, role: storage, address: 10.98.0.11}
tenants:
  - name: bench
    service: {vip: 10.98.0.100, port: 11211}
    allow: [127.0.0.0/8, 10.98.0.0/24]
    kvs: {memory: 256MiB}
    rest: {port: 11311}
YAML
ip netns exec "$ns" "$tmp/lbd" -f "$tmp/lbd.yaml" --node st1 --state-dir "$tmp/state" --socket "$tmp/lbd.sock" >"$tmp/lbd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	[ -S "$tmp/lbd.sock" ] && "$tmp/lbctl" --socket "$tmp/lbd.sock" status >/dev/null 2>&1 && break
	sleep 0.2
done
token="$("$tmp/lbctl" --socket "$tmp/lbd.sock" -o json tenant credentials --api-token bench | sed -n 's/.*"secret": *"\([^"]*\)".*/\1/p')"
[ -n "$token" ] || { echo "bench-rest: no token"; cat "$tmp/lbd.log"; exit 1; }
echo "bench-rest: $(uname -r), $(nproc) CPUs; lbd and restload (Go, closed loop, one request in flight per connection) in one namespace over loopback"
RESTLOAD_TOKEN="$token" ip netns exec "$ns" "$tmp/restload" -mc 127.0.0.1:11211 -rest http://127.0.0.1:11311 "$@"
