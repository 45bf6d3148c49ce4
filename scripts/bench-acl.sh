#!/usr/bin/env bash
# ACL benchmark (make bench-acl): 1,000 tenants x 50 allowed sources.
# Measures pkg/acl's full apply from nothing and the latency of adding one
# source to one tenant, and the same update done the seed's way (one
# iptables rule per source, rewritten with iptables-restore) in the same
# run, then prints the ratios. Runs as root in a network namespace of its
# own (lbdacl-bench-<pid>), removed on exit; the host's rules are never
# touched. Extra arguments go to the benchmark program (see -help).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
GO="${GO:-go}"

if [ "$(id -u)" -ne 0 ]; then
	echo "bench-acl: needs root (network namespace, ipset, iptables)" >&2
	exit 1
fi
bin="$(mktemp -d)/benchacl"
ns="lbdacl-bench-$$"
cleanup() {
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$(dirname "$bin")"
}
trap cleanup EXIT
"$GO" build -o "$bin" ./pkg/acl/internal/benchacl
ip netns add "$ns"
ip -n "$ns" link set lo up
echo "bench-acl: $(uname -r), $(nproc) CPUs, $(iptables --version)"
LBDACL_BENCH_NETNS="$ns" ip netns exec "$ns" "$bin" "$@"
