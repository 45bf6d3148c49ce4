#!/usr/bin/env bash
# bench-cluster.sh — three lbd storage nodes as one store vs twemproxy
# (Debian nutcracker) in front of three memcached 1.6, on loopback, the
# same load in the same run.
#
# lbd runs as three `lbd kvs --cluster ... --certs DIR` processes (a static
# cluster: the same slot map on every node, no replicated state; the nodes
# forward over mutual TLS, as a daemon's storage nodes always do), with
# replicas 0 (lbd-r0), and with replicas 1 sync (lbd-r1sync); lbd-r0-plain
# is replicas 0 forwarding over plain TCP (what TLS costs). The load is spread over the three nodes as the
# VIP's round robin would: three memcload processes, one per node, each
# with a third of the connections (against twemproxy: all three on the
# proxy); memcaslap is given all three nodes. Workloads: get:set 9:1 with
# 64-byte values, and multi-gets of 16 keys. Prints ops/s, p99 (the worst
# of the three memcload processes) and the ratios to twemproxy+memcached.
#
# Then the failover unavailability (last acknowledged write before a
# storage node is killed to the first acknowledged write to one of its
# slots after), BENCH_FAILOVER_RUNS times, median and worst: with real lbd
# processes (three storage nodes in network namespaces, one raft-backed
# cluster state, kill -9 of each in turn, the raft leader among them:
# TestClusterKVSFailoverUnavailability in cmd/lbd; needs root), and
# in-process (TestFailoverUnavailability in pkg/kvs: the store's failover
# alone, with the in-memory cluster state).
#
# Env: BENCH_DURATION (s per run, default 5), BENCH_ROUNDS (default 3),
#      BENCH_CONNS (default 48), BENCH_FAILOVER_RUNS (default 20; 0 skips
#      the failover measurements), BENCH_SERVERS (default "twemproxy lbd-r0
#      lbd-r0-plain lbd-r1sync"; "twemproxy lbd-r0" with
#      BENCH_FAILOVER_RUNS=0 is the quick reading of the replicas-0 ratios),
#      BENCH_RAFT_HEARTBEAT (raft's heartbeat and election timeouts of the
#      real-process failover, e.g. 500ms; lbd's defaults if unset),
#      BENCH_FAILOVER_TRACE (a directory: each kill's writer trace and
#      node logs, to see where a request waited),
#      BENCH_R2_ITEMS (off by default: the in-process failover again with
#      replicas 2 sync and that many 64-byte items loaded first, so that
#      it includes the new primaries' takeover resync; e.g. 200000;
#      BENCH_R2_VALUE sets the items' size, 64 bytes by default),
#      BENCH_HANDOVER_ITEMS (off by default: every slot of a replicas 1
#      sync tenant handed over to its backup in one map change with that
#      many items loaded, and how long until every slot's takeover resync
#      is done; e.g. 300000).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUR=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-48}
FAILOVERS=${BENCH_FAILOVER_RUNS:-20}
SERVERS=${BENCH_SERVERS:-twemproxy lbd-r0 lbd-r0-plain lbd-r1sync}
PER=$((CONNS / 3))

for tool in memcached memcaslap nutcracker go; do
	command -v "$tool" >/dev/null || { echo "bench-cluster: $tool not found (make deps)" >&2; exit 1; }
done

TMP=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT

(cd "$ROOT" && go build -o "$TMP/lbd" ./cmd/lbd && go build -o "$TMP/lbctl" ./cmd/lbctl &&
	go build -o "$TMP/memcload" ./internal/memcload/cmd/memcload)
# The cluster's CA and a certificate per node, as an operator makes them.
"$TMP/lbctl" cluster certs init --dir "$TMP/certs" >/dev/null
for i in 1 2 3; do "$TMP/lbctl" cluster certs issue --dir "$TMP/certs" "st$i" 127.0.0.1 >/dev/null; done

USED=" "
free_port() { # sets PORT (not in a subshell: USED remembers what was handed out)
	local p
	while :; do
		# Below the ephemeral range (32768-), where other programs'
		# connections take ports a listener then cannot bind.
		p=$((20000 + RANDOM % 12000))
		case $USED in *" $p "*) continue ;; esac
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PORT=$p; USED+="$p "; return; fi
	done
}
wait_port() {
	for _ in $(seq 1 300); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "bench-cluster: nothing listening on port $1" >&2
	tail -n 3 "$TMP"/*.log >&2
	exit 1
}
start() { # log command...
	local log=$1; shift
	"$@" >"$log" 2>&1 &
	PIDS+=($!)
}

MC_USER=()
[ "$(id -u)" = 0 ] && MC_USER=(-u root)

# twemproxy + three memcached.
MC=()
for i in 1 2 3; do
	free_port; p=$PORT; MC+=("$p")
	start "$TMP/mc$i.log" memcached "${MC_USER[@]}" -l 127.0.0.1 -p "$p" -U 0 -t 1 -m 64 -c 4096
done
free_port; P_TW=$PORT
free_port; P_TWSTATS=$PORT
cat >"$TMP/nutcracker.yml" <<YML
pool:
  listen: 127.0.0.1:$P_TW
  hash: fnv1a_64
  distribution: ketama
  timeout: 1000
  servers:
   - 127.0.0.1:${MC[0]}:1
   - 127.0.0.1:${MC[1]}:1
   - 127.0.0.1:${MC[2]}:1
YML
start "$TMP/tw.log" nutcracker -c "$TMP/nutcracker.yml" -s "$P_TWSTATS"

# lbd_cluster NAME REPLICAS [--certs DIR]: three lbd kvs nodes; their ports
# in PORTS.
lbd_cluster() {
	local name=$1 replicas=$2 spec="" ports=() peers=() i
	shift 2
	for i in 1 2 3; do
		free_port; ports+=("$PORT")
		free_port; peers+=("$PORT")
	done
	PORTS=("${ports[@]}")
	for i in 0 1 2; do spec+="${spec:+,}st$((i + 1))=127.0.0.1:${peers[$i]}"; done
	for i in 0 1 2; do
		start "$TMP/$name$i.log" "$TMP/lbd" kvs --name bench --listen "127.0.0.1:${ports[$i]}" --memory 64MiB \
			--event-loops 1 --cluster "$spec" --node "st$((i + 1))" --replicas "$replicas" "$@"
	done
}
lbd_cluster r0 0 --certs "$TMP/certs"
R0=("${PORTS[@]}")
lbd_cluster r0plain 0
R0P=("${PORTS[@]}")
lbd_cluster r1 1 --certs "$TMP/certs"
R1=("${PORTS[@]}")
for p in "${MC[@]}" "$P_TW" "${R0[@]}" "${R0P[@]}" "${R1[@]}"; do wait_port "$p"; done
sleep 0.5

echo "# bench-cluster: $(date -u +%FT%TZ) $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# 3x memcached $(memcached -V | cut -d' ' -f2) -t 1 behind nutcracker $(nutcracker --version 2>&1 | sed -n 's/.*nutcracker-//p' | head -1); 3x lbd kvs --event-loops 1; ${DUR}s per run, $ROUNDS rounds, $CONNS connections"

RESULTS=$TMP/results
: >"$RESULTS"
printf 'key\n16 16 1\nvalue\n64 64 1\ncmd\n0 0.1\n1 0.9\n' >"$TMP/caslap.cfg"

# run_memcload LABEL NAME PORT1 PORT2 PORT3 -- extra: three memcload at once.
run_memcload() {
	local label=$1 name=$2 p1=$3 p2=$4 p3=$5; shift 6
	local i=0 p ml=()
	for p in "$p1" "$p2" "$p3"; do
		"$TMP/memcload" -addr "127.0.0.1:$p" -conns "$PER" -duration "${DUR}s" -value-size 64 -keys 10000 \
			-prefix "ml$i:" -json "$@" >"$TMP/ml$i.json" &
		ml+=($!)
		i=$((i + 1))
	done
	wait "${ml[@]}" || true
	awk -v label="$label" -v name="$name" '
		{ if (match($0, /"keys_per_sec":[0-9.e+]+/)) ops += substr($0, RSTART + 15, RLENGTH - 15)
		  if (match($0, /"p99_us":[0-9]+/)) { p = substr($0, RSTART + 9, RLENGTH - 9) + 0; if (p > p99) p99 = p } }
		END { printf "%s %s %d %d\n", label, name, ops, p99 }' "$TMP"/ml?.json >>"$RESULTS"
}
run_caslap() { # LABEL NAME SERVERS extra...
	local label=$1 name=$2 servers=$3; shift 3
	local out tps
	out=$(memcaslap -s "$servers" -c "$CONNS" -T 2 -t "${DUR}s" -F "$TMP/caslap.cfg" "$@" 2>&1)
	tps=$(echo "$out" | sed -n 's/.*TPS: \([0-9]*\).*/\1/p' | tail -1)
	echo "$label $name ${tps:-0} -" >>"$RESULTS"
}
servers() { local s="" p; for p in "$@"; do s+="${s:+,}127.0.0.1:$p"; done; echo "$s"; }

for round in $(seq 1 "$ROUNDS"); do
	for t in $SERVERS; do
		case $t in
		twemproxy) P=("$P_TW" "$P_TW" "$P_TW") ;;
		lbd-r0) P=("${R0[@]}") ;;
		lbd-r0-plain) P=("${R0P[@]}") ;;
		lbd-r1sync) P=("${R1[@]}") ;;
		esac
		run_memcload "memcload-get:set=9:1" "$t" "${P[@]}" -- -get-ratio 0.9
		run_memcload "memcload-multiget16" "$t" "${P[@]}" -- -get-ratio 1 -multiget 16 -prefill=false
		if [ "$t" = twemproxy ]; then S=$(servers "$P_TW"); else S=$(servers "${P[@]}"); fi
		run_caslap "memcaslap-get:set=9:1" "$t" "$S"
	done
done

awk '
function median(v, n,    i, j, x) {
	for (i = 2; i <= n; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
	return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
{ w=$1; s=$2; k=++runs[w,s]; ops[w,s,k]=$3; p99[w,s,k]=$4; if (!(w in seen)) { seen[w]=1; order[++n]=w } }
END {
	printf "%-24s %-12s %12s %9s %10s %10s\n", "workload", "server", "ops/s", "p99_us", "ops_ratio", "p99_ratio"
	ns = split("twemproxy lbd-r0 lbd-r0-plain lbd-r1sync", ss, " ")
	for (i = 1; i <= n; i++) for (j = 1; j <= ns; j++) {
		w = order[i]; s = ss[j]; r = runs[w,s]
		if (r == 0) continue
		delete v; for (k = 1; k <= r; k++) v[k] = ops[w,s,k]; mo[w,s] = median(v, r)
		if (p99[w,s,1] == "-") mp[w,s] = "-"; else { delete v; for (k = 1; k <= r; k++) v[k] = p99[w,s,k]; mp[w,s] = int(median(v, r)) }
		or = (mo[w,"twemproxy"] > 0) ? sprintf("%.2fx", mo[w,s] / mo[w,"twemproxy"]) : "-"
		pr = (mp[w,s] != "-" && mp[w,"twemproxy"] > 0) ? sprintf("%.2fx", mp[w,s] / mp[w,"twemproxy"]) : "-"
		printf "%-24s %-12s %12d %9s %10s %10s\n", w, s, mo[w,s], mp[w,s], or, pr
	}
}' "$RESULTS"

[ "$FAILOVERS" -gt 0 ] || exit 0
echo "# failover unavailability, $FAILOVERS kills -9 (real lbd processes in namespaces, replicas 1 sync):"
if [ "$(id -u)" = 0 ]; then
	(cd "$ROOT" && LBD_BIN=$TMP/lbd BENCH_FAILOVER_RUNS=$FAILOVERS go test -count=1 -tags integration -timeout 30m \
		-run '^TestClusterKVSFailoverUnavailability$' -v ./cmd/lbd/ 2>&1 |
		sed -n 's/^ *kvs_faults_integration_test.go:[0-9]*: //p; /^\(--- FAIL\|FAIL\)/p')
else
	echo "(skipped: needs root for the network namespaces)"
fi
echo "# failover unavailability, $FAILOVERS kills (in-process nodes, replicas 1 sync):"
(cd "$ROOT" && BENCH_FAILOVER_RUNS=$FAILOVERS go test -count=1 -run '^TestFailoverUnavailability$' -v ./pkg/kvs/ 2>&1 |
	sed -n 's/.*failover unavailability: /failover unavailability: /p')
if [ "${BENCH_R2_ITEMS:-0}" -gt 0 ]; then
	echo "# failover unavailability, $FAILOVERS kills (in-process nodes, replicas 2 sync, $BENCH_R2_ITEMS items):"
	(cd "$ROOT" && BENCH_FAILOVER_RUNS=$FAILOVERS BENCH_R2_ITEMS=$BENCH_R2_ITEMS go test -count=1 -timeout 30m \
		-run '^TestFailoverUnavailabilityR2$' -v ./pkg/kvs/ 2>&1 |
		sed -n 's/.*failover unavailability: /failover unavailability: /p; /^\(--- FAIL\|FAIL\)/p')
fi
if [ "${BENCH_HANDOVER_ITEMS:-0}" -gt 0 ]; then
	echo "# hand-over of every slot (in-process nodes, replicas 1 sync, $BENCH_HANDOVER_ITEMS items):"
	(cd "$ROOT" && BENCH_HANDOVER_ITEMS=$BENCH_HANDOVER_ITEMS go test -count=1 -timeout 30m \
		-run '^TestClusterHandOverResyncBatched$' -v ./pkg/kvs/ 2>&1 |
		sed -n 's/.*items, every slot handed over: /hand-over: /p; /^\(--- FAIL\|FAIL\)/p')
fi
