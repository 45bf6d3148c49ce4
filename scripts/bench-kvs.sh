#!/usr/bin/env bash
# bench-kvs.sh — memcached 1.6 vs lbd's KVS (memory store, and durable store
# with group commit), on loopback, driven by the same load generators in the
# same run: memcaslap (libmemcached-tools) and memcload (ours, Go).
#
# Workloads: get:set 9:1 with 64-byte values over >= 32 connections, and a
# multi-get run (16 keys per get; memcload also pipelines 4 requests).
# Prints ops/s and p99 for each server and the ratio lbd/memcached, and
# the share of gets each server answered with a hit: a miss costs a server
# less than a hit, so ops/s compare fairly only at equal hit ratios.
#
# Then memcload's get:set again beside a busy loop on every CPU (see
# "Beside busy loops" below), the price of lbd's SCHED_BATCH event loops;
# and with the servers and the client on CPUs of their own (see "Own
# CPUs" below), which takes the client's scheduling out of the latency it
# measures.
#
# Every workload runs BENCH_ROUNDS times per server, the servers in turn
# (reversed every other round, so drift in the machine's load does not
# favour one); the figures are the medians over the rounds (a median is
# not swayed by the odd run in which the scheduler happens to place a
# server's and the client's threads unusually well or badly).
#
# Env: BENCH_DURATION (s per run, default 5), BENCH_ROUNDS (default 3),
#      BENCH_CONNS (default 32), BENCH_HOG_CONNS (connections beside busy
#      loops, default 4), LBD (lbd binary, default bin/lbd; built if
#      missing).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUR=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-32}
MEM_MB=64
LBD=${LBD:-$ROOT/bin/lbd}

for tool in memcached memcaslap go; do
	command -v "$tool" >/dev/null || { echo "bench-kvs: $tool not found (make deps)" >&2; exit 1; }
done

TMP=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT

if [ ! -x "$LBD" ]; then
	(cd "$ROOT" && go build -o "$TMP/lbd" ./cmd/lbd)
	LBD=$TMP/lbd
fi
(cd "$ROOT" && go build -o "$TMP/memcload" ./internal/memcload/cmd/memcload)

# free_port prints a loopback port nobody listens on.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

wait_port() {
	for _ in $(seq 1 300); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "bench-kvs: nothing listening on port $1" >&2
	exit 1
}

P_MC=$(free_port); P_MEM=$(free_port); P_DUR=$(free_port)
MC_USER=()
[ "$(id -u)" = 0 ] && MC_USER=(-u root)
# The servers, without port (and memcached without thread count).
MEMCACHED=(memcached "${MC_USER[@]}" -l 127.0.0.1 -U 0 -m "$MEM_MB" -c 4096)
LBD_MEMORY=("$LBD" kvs --memory "${MEM_MB}MiB")

# start runs a server in the background, its output in log, and records
# its pid in PIDS.
start() { # log command...
	local log=$1
	shift
	"$@" >"$log" 2>&1 &
	PIDS+=($!)
}

start "$TMP/mc.log" "${MEMCACHED[@]}" -p "$P_MC" -t 2
start "$TMP/mem.log" "${LBD_MEMORY[@]}" --listen "127.0.0.1:$P_MEM"
start "$TMP/dur.log" "$LBD" kvs --listen "127.0.0.1:$P_DUR" --store durable --dir "$TMP/durable" \
	--sync group --sync-interval 10ms --memory "${MEM_MB}MiB"
for p in "$P_MC" "$P_MEM" "$P_DUR"; do wait_port "$p"; done

TARGETS=("memcached:$P_MC" "lbd-memory:$P_MEM" "lbd-durable:$P_DUR")
printf 'key\n16 16 1\nvalue\n64 64 1\ncmd\n0 0.1\n1 0.9\n' >"$TMP/caslap.cfg"

echo "# bench-kvs: $(date -u +%FT%TZ) $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# memcached $(memcached -V | cut -d' ' -f2) -t 2 -m $MEM_MB; lbd --memory ${MEM_MB}MiB; ${DUR}s per run, $ROUNDS rounds, $CONNS connections"

RESULTS=$TMP/results
: >"$RESULTS"
CLIENT=() # the load generators' command prefix (taskset, below)

# get_counts prints the server's get_hits and get_misses.
get_counts() { # port
	local line hits=0 misses=0
	exec 3<>"/dev/tcp/127.0.0.1/$1"
	printf 'stats\r\nquit\r\n' >&3
	while IFS= read -r line <&3; do
		line=${line%$'\r'}
		case $line in
		"STAT get_hits "*) hits=${line##* } ;;
		"STAT get_misses "*) misses=${line##* } ;;
		END) break ;;
		esac
	done
	exec 3<&-
	echo "$hits $misses"
}

# hit_pct prints the share of gets answered with a hit between two
# get_counts, in percent.
hit_pct() { # "hits misses" before, "hits misses" after
	local b=($1) a=($2)
	awk -v h=$((a[0] - b[0])) -v m=$((a[1] - b[1])) \
		'BEGIN { if (h + m > 0) printf "%.1f", 100 * h / (h + m); else print "-" }'
}

# memcaslap reports throughput only.
run_caslap() { # name port label extra...
	local name=$1 port=$2 label=$3; shift 3
	local out tps before
	before=$(get_counts "$port")
	out=$("${CLIENT[@]}" memcaslap -s "127.0.0.1:$port" -c "$CONNS" -T 2 -t "${DUR}s" -F "$TMP/caslap.cfg" "$@" 2>&1)
	tps=$(echo "$out" | sed -n 's/.*TPS: \([0-9]*\).*/\1/p' | tail -1)
	echo "$label $name ${tps:-0} - $(hit_pct "$before" "$(get_counts "$port")")" >>"$RESULTS"
}

run_memcload() { # name port label extra...
	local name=$1 port=$2 label=$3; shift 3
	local out ops p99 before
	before=$(get_counts "$port")
	out=$("${CLIENT[@]}" "$TMP/memcload" -addr "127.0.0.1:$port" -conns "$CONNS" -duration "${DUR}s" \
		-value-size 64 -get-ratio 0.9 -keys 10000 -json "$@")
	ops=$(echo "$out" | sed -n 's/.*"keys_per_sec":\([0-9.e+]*\).*/\1/p')
	p99=$(echo "$out" | sed -n 's/.*"p99_us":\([0-9]*\).*/\1/p')
	echo "$label $name ${ops:-0} ${p99:--} $(hit_pct "$before" "$(get_counts "$port")")" >>"$RESULTS"
}

# in_turn prints the targets in the order of the given round: as given,
# reversed every other round.
in_turn() { # round target...
	local round=$1
	shift
	if [ $((round % 2)) = 0 ]; then printf '%s\n' "$@" | tac; else printf '%s\n' "$@"; fi
}

for round in $(seq 1 "$ROUNDS"); do
	order=($(in_turn "$round" "${TARGETS[@]}"))
	for t in "${order[@]}"; do run_caslap "${t%%:*}" "${t##*:}" "memcaslap-get:set=9:1"; done
	for t in "${order[@]}"; do run_memcload "${t%%:*}" "${t##*:}" "memcload-get:set=9:1"; done
	for t in "${order[@]}"; do run_caslap "${t%%:*}" "${t##*:}" "memcaslap-multiget16" -d 16; done
	for t in "${order[@]}"; do run_memcload "${t%%:*}" "${t##*:}" "memcload-multiget16x4" -multiget 16 -pipeline 4 -prefill=false; done
done

summarize() { # results-file server...
	local file=$1; shift
	awk -v servers="$*" '
	# median of the n values v[1..n] (insertion sort; n is small)
	function median(v, n,    i, j, x) {
		for (i = 2; i <= n; i++) {
			x = v[i]
			for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]
			v[j + 1] = x
		}
		return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
	}
	{
		w=$1; s=$2; k=++runs[w,s]; ops[w,s,k]=$3; p99[w,s,k]=$4; hit[w,s,k]=$5
		if (!(w in seen)) { seen[w]=1; order[++n]=w }
	}
	END {
		printf "%-24s %-15s %12s %9s %10s %10s %6s\n", "workload", "server", "ops/s", "p99_us", "ops_ratio", "p99_ratio", "hit%"
		ns = split(servers, ss, " ")
		for (i = 1; i <= n; i++) for (j = 1; j <= ns; j++) {
			w = order[i]; s = ss[j]; r = runs[w,s]
			delete v; for (k = 1; k <= r; k++) v[k] = ops[w,s,k]
			mops[w,s] = median(v, r)
			# the lowest hit share over the rounds
			mhit[w,s] = "-"
			for (k = 1; k <= r; k++) if (hit[w,s,k] != "-" && (mhit[w,s] == "-" || hit[w,s,k] + 0 < mhit[w,s] + 0)) mhit[w,s] = hit[w,s,k]
			if (p99[w,s,1] == "-") { mp99[w,s] = "-"; continue }
			delete v; for (k = 1; k <= r; k++) v[k] = p99[w,s,k]
			mp99[w,s] = int(median(v, r))
		}
		for (i = 1; i <= n; i++) {
			w = order[i]; base = mops[w,"memcached"]; bp = mp99[w,"memcached"]
			for (j = 1; j <= ns; j++) {
				s = ss[j]
				r = (base > 0) ? sprintf("%.2fx", mops[w,s] / base) : "-"
				pr = (bp != "-" && bp > 0 && mp99[w,s] != "-") ? sprintf("%.2fx", mp99[w,s] / bp) : "-"
				printf "%-24s %-15s %12.0f %9s %10s %10s %6s\n", w, s, mops[w,s], mp99[w,s], r, pr, mhit[w,s]
				if (s != "memcached" && mhit[w,s] != "-" && mhit[w,"memcached"] != "-" && mhit[w,s] + 1 < mhit[w,"memcached"] + 0)
					warn = warn sprintf("# note: %s answered fewer gets with a hit than memcached on %s (%s%% against %s%%): its ops/s count cheaper misses\n", s, w, mhit[w,s], mhit[w,"memcached"])
			}
		}
		# lbd against every other memcached configuration as well
		for (i = 1; i <= n; i++) for (j = 1; j <= ns; j++) for (m = 1; m <= ns; m++) {
			w = order[i]; s = ss[j]; b = ss[m]
			if (s !~ /^lbd/ || b !~ /^memcached-/ || mops[w,b] <= 0) continue
			pr = (mp99[w,b] != "-" && mp99[w,b] > 0 && mp99[w,s] != "-") ? sprintf(", p99 %.2fx", mp99[w,s] / mp99[w,b]) : ""
			warn = warn sprintf("# %s against %s on %s: ops %.2fx%s\n", s, b, w, mops[w,s] / mops[w,b], pr)
		}
		printf "%s", warn
	}' "$file"
}
summarize "$RESULTS" memcached lbd-memory lbd-durable
echo "# goals: lbd-memory ops >= 1.00x with p99 <= 1.20x; lbd-durable (group commit) ops >= 0.50x"
peak_mib() { awk '/^VmHWM:/ { printf "%d", $2 / 1024 }' "/proc/$1/status"; }
echo "# peak RSS: memcached $(peak_mib "${PIDS[0]}") MiB, lbd-memory $(peak_mib "${PIDS[1]}") MiB, lbd-durable $(peak_mib "${PIDS[2]}") MiB"
echo "# hit%: the share of gets answered with a hit, the lowest over the rounds (memcaslap reads keys it wrote in the same run)"

# Beside busy loops: fresh servers, and a CPU-bound program (a shell busy
# loop) on every CPU; memcload get:set with a few connections. Here lbd's
# event loops run under SCHED_BATCH (its default) and SCHED_OTHER
# (--sched-batch=false): a loop under SCHED_BATCH that wakes does not
# preempt the busy loop on its CPU but waits for the end of its slice,
# which the latency shows. The busy loops end by themselves after a while
# (timeout), should this script be killed before it stops them.
HOG_CONNS=${BENCH_HOG_CONNS:-4}
P_MC3=$(free_port); P_MEM3=$(free_port); P_OTH3=$(free_port)
start "$TMP/mc3.log" "${MEMCACHED[@]}" -p "$P_MC3" -t 2
start "$TMP/mem3.log" "${LBD_MEMORY[@]}" --listen "127.0.0.1:$P_MEM3"
start "$TMP/oth3.log" "${LBD_MEMORY[@]}" --listen "127.0.0.1:$P_OTH3" --sched-batch=false
TARGETS3=("memcached:$P_MC3" "lbd-memory:$P_MEM3" "lbd-sched-other:$P_OTH3")
for t in "${TARGETS3[@]}"; do wait_port "${t##*:}"; done
HOGS=()
for cpu in $(seq 0 $(($(nproc) - 1))); do
	taskset -c "$cpu" timeout $((ROUNDS * DUR * 4 + 60)) bash -c 'while :; do :; done' &
	HOGS+=($!)
	PIDS+=($!)
done
RESULTS=$TMP/results-busy
: >"$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
	for t in $(in_turn "$round" "${TARGETS3[@]}"); do
		run_memcload "${t%%:*}" "${t##*:}" "memcload-get:set=9:1" -conns "$HOG_CONNS" # the last -conns counts
	done
done
kill "${HOGS[@]}" 2>/dev/null || true
wait "${HOGS[@]}" 2>/dev/null || true
echo
echo "# beside busy loops: a shell busy loop on every CPU; memcload with $HOG_CONNS connections; lbd-sched-other is lbd --sched-batch=false"
summarize "$RESULTS" memcached lbd-memory lbd-sched-other

# Own CPUs: the same servers and client, but the servers restricted to the
# first half of the CPUs and the client to the other half. On a machine
# this small, the run above shares every CPU between the client's threads
# and the server's, and the client's own wait for a CPU ends up in the
# latency it measures; here it does not. memcached runs as above (-t 2),
# and also with one thread per CPU it has (its own advice), when that is
# another count.
NCPU=$(nproc)
if [ "$NCPU" -lt 2 ] || ! command -v taskset >/dev/null; then
	echo "# own CPUs: skipped (needs 2 CPUs and taskset)"
	exit 0
fi
HALF=$((NCPU / 2))
SRV_CPUS=0-$((HALF - 1))
CLIENT=(taskset -c "$HALF-$((NCPU - 1))")
P_MC2=$(free_port); P_MEM2=$(free_port)
start "$TMP/mc2.log" taskset -c "$SRV_CPUS" "${MEMCACHED[@]}" -p "$P_MC2" -t 2
start "$TMP/mem2.log" taskset -c "$SRV_CPUS" "${LBD_MEMORY[@]}" --listen "127.0.0.1:$P_MEM2"
TARGETS2=("memcached:$P_MC2" "lbd-memory:$P_MEM2")
SERVERS2=(memcached lbd-memory)
if [ "$HALF" != 2 ]; then
	P_MCN=$(free_port)
	start "$TMP/mcn.log" taskset -c "$SRV_CPUS" "${MEMCACHED[@]}" -p "$P_MCN" -t "$HALF"
	TARGETS2=("memcached:$P_MC2" "memcached-t$HALF:$P_MCN" "lbd-memory:$P_MEM2")
	SERVERS2=(memcached "memcached-t$HALF" lbd-memory)
fi
for t in "${TARGETS2[@]}"; do wait_port "${t##*:}"; done
RESULTS=/dev/null # the fill's figures are not reported
for t in "${TARGETS2[@]}"; do run_caslap "${t%%:*}" "${t##*:}" "fill"; done
RESULTS=$TMP/results-own-cpus
: >"$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
	for t in $(in_turn "$round" "${TARGETS2[@]}"); do run_memcload "${t%%:*}" "${t##*:}" "memcload-get:set=9:1"; done
done
echo
echo "# own CPUs: servers on CPUs $SRV_CPUS, memcaslap (fill) and memcload on CPUs $HALF-$((NCPU - 1))"
summarize "$RESULTS" "${SERVERS2[@]}"
