#!/usr/bin/env bash
# The lbd lab: two directors (VRRP active/backup), three storage nodes serving
# a memcached tenant in DR mode, an allowed client and an outsider, each in its
# own network namespace on one bridge. The five nodes are one cluster (raft
# over mutual TLS): one lbctl command on any node changes every node, and the
# three storage nodes are one replicated store. Needs root and a kernel with IPVS; run
# it through scripts/demo.sh, which boots a VM when this kernel has none.
# Every namespace is named uniquely for this run and removed at the end; all
# traffic stays inside them. Exits non-zero if anything does not happen.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$(pwd)/bin"
P="lbdemo$$-"
WORK="$(mktemp -d /tmp/lbd-demo.XXXXXX)"
VIP=10.99.0.100
PORT=13101
pids=()

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '   %s\n' "$*"; }
in_ns() { local n=$1; shift; ip netns exec "$P$n" "$@"; }

cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	for n in cl out lb1 lb2 st1 st2 st3 sw; do ip netns del "$P$n" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

# wait_for DESCRIPTION SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local what=$1 end=$((SECONDS + $2))
	shift 2
	while ((SECONDS < end)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	fail "timed out waiting for $what"
}

# fail MESSAGE: say what failed, with the end of every node's log.
fail() {
	echo "demo: $*" >&2
	for f in "$WORK"/*.log; do echo "--- $f"; tail -20 "$f"; done >&2
	exit 1
}

# pipeline NS SECONDS: send the commands on stdin to the VIP from namespace
# NS on one connection, all at once, and print the replies.
pipeline() {
	in_ns "$1" timeout "$2" bash -c 'exec 3<>/dev/tcp/'$VIP/$PORT' && { cat; printf "quit\r\n"; } >&3 && cat <&3'
}
# mc NS COMMANDS: send memcached commands (printf %b escapes) to the VIP
# from namespace NS.
mc() { printf '%b' "$2" | pipeline "$1" 5; }
# mc_has NS COMMANDS TEXT: the reply to COMMANDS holds TEXT.
mc_has() { mc "$1" "$2" 2>/dev/null | grep -q "$3"; }
# both_answer: two connections in a row (two storage nodes, round robin)
# write and read through the VIP.
both_answer() { mc_has cl "set warm 0 0 1\r\nx\r\n" STORED && mc_has cl "get warm\r\n" VALUE; }
lbctl() { "$BIN/lbctl" --socket "$WORK/$1.sock" "${@:2}"; }
# settled: lbctl node list shows no node rebuilding or moving off.
settled() { local l; l=$(lbctl st1 node list) && ! grep -q "rebuilding\|moving off" <<<"$l"; }
# drained NODE: lbctl node list says NODE holds nothing and no backup is
# being rebuilt.
drained() { local l; l=$(lbctl st1 node list) && grep -q "drained: lbctl node remove $1" <<<"$l" && ! grep -q rebuilding <<<"$l"; }
# load FILE: until FILE.stop exists (at most 5 minutes), set a key through
# the VIP and read it back on the next connection (round robin: another
# storage node), from one shell in the client's namespace; writes "OK BAD"
# to FILE.out and the bad replies to FILE.err.
load() {
	in_ns cl timeout 300 bash -c '
		ok=0 bad=0 i=0 cr=$(printf "\r")
		while [ ! -e "$1.stop" ]; do
			i=$((i + 1)) r="no connection" v=
			if exec 3<>"/dev/tcp/$2"; then
				printf "set load%d 0 0 %d\r\n%d\r\nquit\r\n" "$i" "${#i}" "$i" >&3
				IFS= read -r -t 5 r <&3
				exec 3<&-
				r=${r%"$cr"}
			fi
			if [ "$r" = STORED ] && exec 3<>"/dev/tcp/$2"; then
				printf "get load%d\r\nquit\r\n" "$i" >&3
				IFS= read -r -t 5 r <&3 && IFS= read -r -t 5 v <&3
				exec 3<&-
				v=${v%"$cr"}
			fi
			if [ "$v" = "$i" ]; then
				ok=$((ok + 1))
			else
				bad=$((bad + 1))
				printf "load%d: %s %s\n" "$i" "$r" "$v" >>"$1.err"
			fi
		done
		echo "$ok $bad" >"$1.out"' _ "$1" "$VIP/$PORT"
}
# preload N: set pre1..preN through the VIP, pipelined on one connection
# (the storage node forwards each key to its primary, which answers once
# the write is on its backup and on both disks); prints how many were
# stored. readback N: get them, pipelined too; prints how many were found.
preload() {
	local i
	for ((i = 1; i <= $1; i++)); do printf 'set pre%d 0 0 4\r\nitem\r\n' "$i"; done | pipeline cl 120 | tee "$WORK/pre.out" | grep -c "^STORED" || true
}
readback() {
	local i
	for ((i = 1; i <= $1; i++)); do printf 'get pre%d\r\n' "$i"; done | pipeline cl 120 | grep -c '^VALUE' || true
}

start() { # start NODE; pid_NODE is lbd's own pid (ip netns exec execs it)
	ip netns exec "$P$1" "$BIN/lbd" -f "$WORK/lbd-$1.yaml" --node "$1" --state-dir "$WORK/state-$1" \
		--socket "$WORK/$1.sock" >>"$WORK/$1.log" 2>&1 &
	pids+=($!)
	eval "pid_$1=$!"
	disown $!
}

bold "Building the lab: a bridge and seven namespaces"
ip netns add "${P}sw"
in_ns sw ip link set lo up
in_ns sw ip link add br0 type bridge
in_ns sw ip link set br0 up
declare -A addr=([cl]=10.99.0.10 [out]=10.99.0.20 [lb1]=10.99.0.2 [lb2]=10.99.0.3 [st1]=10.99.0.11 [st2]=10.99.0.12 [st3]=10.99.0.13)
for n in cl out lb1 lb2 st1 st2 st3; do
	ip netns add "$P$n"
	in_ns "$n" ip link set lo up
	in_ns sw ip link add "v$n" type veth peer name eth0 netns "$P$n"
	in_ns sw ip link set "v$n" master br0 up
	in_ns "$n" ip addr add "${addr[$n]}/24" dev eth0
	in_ns "$n" ip link set eth0 up
	say "$n ${addr[$n]}"
done

bold "The cluster's CA and a certificate per node (lbctl cluster certs)"
"$BIN/lbctl" cluster certs init --dir "$WORK/certs" | sed 's/^/   /'
for n in lb1 lb2 st1 st2 st3; do
	"$BIN/lbctl" cluster certs issue --dir "$WORK/certs" "$n" "${addr[$n]}" | sed 's/^/   /'
done

cat >"$WORK/lbd.yaml" <<EOF
# Two directors, three storage nodes, one tenant on VIP $VIP:$PORT; one cluster.
nodes:
  - {name: lb1, role: director, address: 10.99.0.2, interface: eth0, priority: 150}
  - {name: lb2, role: director, address: 10.99.0.3, interface: eth0, priority: 100}
  - {name: st1, role: storage, address: 10.99.0.11, interface: eth0}
  - {name: st2, role: storage, address: 10.99.0.12, interface: eth0}
  - {name: st3, role: storage, address: 10.99.0.13, interface: eth0}
vrrp: {virtual_router_id: 51, advert_interval: 1s, vips: [$VIP]}
defaults:
  scheduler: rr
  drain_period: 5s
  health: {type: memcached, connect_timeout: 1s, retry: 1, delay_before_retry: 1s,
           delay_loop: 2s, warmup: 0, inhibit_on_failure: true}
tenants:
  - name: user1
    service: {vip: $VIP, port: $PORT}
    allow: [10.99.0.10]
    # one store over the storage nodes: every key on a primary and 1 backup
    kvs: {memory: 64MiB, storage: durable, sync: group, replicas: 1}
cluster:              # raft on each node's port 7380, mutual TLS; voters lb1, lb2, st1
  kvs_monitor_interval: 1s   # the storage probes (300ms by default) are slow under emulation
  tls:
    ca: $WORK/certs/ca.pem
    cert: $WORK/certs/{node}.pem
    key: $WORK/certs/{node}-key.pem
EOF
# Each node keeps its own copy of the file: lbd writes the configuration
# applied cluster-wide back to it.
for n in lb1 lb2 st1 st2 st3; do cp "$WORK/lbd.yaml" "$WORK/lbd-$n.yaml"; done
bold "The configuration ($WORK/lbd.yaml)"
sed 's/^/   /' "$WORK/lbd.yaml"
bold "lbd -t checks it"
"$BIN/lbd" -t -f "$WORK/lbd.yaml" | sed 's/^/   /'

bold "Starting lbd on every node (same file, role by --node)"
for n in st1 st2 st3 lb1 lb2; do start "$n"; say "lbd --node $n"; done
wait_for "lb1 to become VRRP master with the VIP" 180 sh -c "ip netns exec ${P}lb1 ip -o addr show dev eth0 | grep -q ' $VIP/'"
wait_for "the tenant's IPVS service" 120 sh -c "ip netns exec ${P}lb1 ipvsadm -Ln | grep -q 10.99.0.12:$PORT"
wait_for "st1 to serve the tenant" 120 sh -c "ip netns exec ${P}st1 ip -o addr show dev lo | grep -q $VIP"
say "storage nodes: VIP $VIP on lo, arp_ignore=$(in_ns st1 sysctl -n net.ipv4.conf.all.arp_ignore), arp_announce=$(in_ns st1 sysctl -n net.ipv4.conf.all.arp_announce)"

bold "lbctl status on lb1 (ipvsadm -Ln style)"
lbctl lb1 status | sed 's/^/   /'
bold "The kernel agrees: ipvsadm -Ln on lb1"
in_ns lb1 ipvsadm -Ln | sed 's/^/   /'

bold "One cluster: lbctl cluster status on st2 (any node answers)"
wait_for "st2 to know the raft leader" 90 sh -c "'$BIN/lbctl' --socket '$WORK/st2.sock' cluster status | grep -qi leader"
lbctl st2 cluster status | sed 's/^/   /'

bold "The client stores and reads through the VIP (DR: replies come straight from the storage node)"
wait_for "the storage nodes to answer through the VIP" 90 both_answer
mc cl "set greeting 0 0 5\r\nhello\r\nget greeting\r\n" | sed 's/^/   /'
for i in 1 2 3 4; do
	r=$(mc cl 'get greeting\r\nstats\r\n' | tr -d '\r')
	v=$(printf '%s\n' "$r" | sed -n 2p)
	[ "$v" = hello ] || fail "connection $i did not read its write: $r"
	say "connection $i answered by storage lbd pid $(printf '%s\n' "$r" | awk '$2=="pid"{print $3}'): greeting=$v"
done
say "st1 pid $pid_st1, st2 pid $pid_st2, st3 pid $pid_st3: round robin, and one store: every connection reads the write"
bold "lbctl kvs status: the tenant's 1024 slots, each with a primary and an in-sync backup"
lbctl st1 kvs status | sed 's/^/   /'

bold "The outsider (10.99.0.20) is fenced: its SYNs are dropped before IPVS"
if mc out "version\r\n" >/dev/null 2>&1; then fail "the outsider got in"; fi
say "no answer"
bold "One command on the backup director lb2 admits it on every node (--wait: until all applied)"
lbctl lb2 tenant allow add --wait 30s user1 10.99.0.20 2>&1 | sed 's/^/   /'
mc out "version\r\n" | sed 's/^/   outsider: /'
lbctl st2 tenant allow del --wait 30s user1 10.99.0.20 2>&1 | sed 's/^/   /'
if mc out "version\r\n" >/dev/null 2>&1; then fail "the outsider still got in"; fi
say "removed again (through st2): no answer"

bold "Killing storage node st1 (kill -9): it leaves the rotation, its backups take over its slots"
kill -9 "$pid_st1"
wait_for "st1 to reach weight 0" 60 sh -c "ip netns exec ${P}lb1 ipvsadm -Ln | grep '10.99.0.11:$PORT' | awk '{exit \$4!=0}'"
lbctl lb1 status | sed 's/^/   /'
wait_for "st2 to serve st1's keys" 60 mc_has cl "get greeting\r\n" hello
for i in 1 2 3; do say "request $i: greeting=$(mc cl 'get greeting\r\n' | tr -d '\r' | sed -n 2p) (served by st2 or st3)"; done
bold "st1 comes back: its slots are rebuilt from the others, then it rejoins the rotation"
start st1
wait_for "st1 to be back in rotation" 90 sh -c "ip netns exec ${P}lb1 ipvsadm -Ln | grep '10.99.0.11:$PORT' | awk '{exit \$4!=1}'"
lbctl lb1 status | sed -n '1,12p' | sed 's/^/   /'
lbctl st2 kvs status | sed 's/^/   /'

bold "Draining storage node st3 under a client load (lbctl node drain): its slots move online"
wait_for "every slot of st1 back and in sync" 120 settled
stored=$(preload 2000)
[ "$stored" -eq 2000 ] || { sort "$WORK/pre.out" | uniq -c | sort -rn | head; fail "only $stored of 2000 pipelined sets stored before the drain"; }
say "2000 keys stored through the VIP first, pipelined on one connection (durable: each on a backup and both disks)"
load "$WORK/load" &
load_pid=$!
lbctl st2 node drain st3 | sed 's/^/   /'
wait_for "st3 to hold no slot, every backup in sync" 300 drained st3
touch "$WORK/load.stop"
wait "$load_pid" || true
read -r ok bad <"$WORK/load.out" || fail "the load left no result"
[ "$ok" -gt 0 ] || fail "the load wrote nothing during the drain"
[ "$bad" -eq 0 ] || fail "the load saw $bad errors during the drain: $(head -5 "$WORK/load.err")"
say "during the drain: $ok keys written and read back on the next connection through the VIP, no error"
lbctl st1 node list | sed 's/^/   /'
found=$(readback 2000)
[ "$found" -eq 2000 ] || fail "only $found of the 2000 keys stored before the drain read back after it"
say "all 2000 keys stored before the drain read back after it; st3 holds no slot and still answers"
say "through the VIP: it forwards each key to its primary"

bold "Killing the active director lb1 (kill -9): lb2 takes the VIP"
start_ms=$(date +%s%3N)
kill -9 "$pid_lb1"
wait_for "lb2 to own the VIP" 30 sh -c "ip netns exec ${P}lb2 ip -o addr show dev eth0 | grep -q ' $VIP/'"
say "lb2 owns $VIP after $(($(date +%s%3N) - start_ms)) ms (advert_interval 1s here, under emulation; make bench-vrrp measures 100ms)"
mc cl "set after-failover 0 0 2\r\nok\r\nget after-failover\r\n" | sed 's/^/   via lb2: /'
if mc out "version\r\n" >/dev/null 2>&1; then fail "the outsider got in through lb2"; fi
say "the outsider, removed before the failover, stays out through lb2"
lbctl lb2 status | sed -n '1,4p' | sed 's/^/   /'
bold "lb1 restarts and, having the higher priority, takes the VIP back (preempt)"
start lb1
wait_for "lb1 to own the VIP again" 60 sh -c "ip netns exec ${P}lb1 ip -o addr show dev eth0 | grep -q ' $VIP/'"
mc cl "set after-preempt 0 0 2\r\nok\r\nget after-preempt\r\n" | sed 's/^/   via lb1: /'

bold "lbctl kvs stats on the storage nodes"
lbctl st1 kvs stats | sed 's/^/   /'
lbctl st2 kvs stats | sed 's/^/   /'
bold "lbctl cluster members"
lbctl lb1 cluster members | sed 's/^/   /'

bold "Demo complete: one cluster, DR balancing, one replicated store (a storage node drained under load), health checks, allow-lists changed from any node and VRRP failover all worked"
