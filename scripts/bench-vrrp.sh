#!/usr/bin/env bash
# VRRP takeover benchmark: lbd's pkg/vrrp against keepalived, same run, same
# settings (advert_int 100ms), on a LAN of network
# namespaces it creates (lbdvrb-<pid>-*) and removes. Needs root.
#
# For each implementation it measures, N times each (default 20):
#   kill: kill -9 of the Master -> first gratuitous ARP for the VIP from the
#         Backup (sent after it added the VIP), seen from a third namespace;
#   stop: clean stop (SIGTERM) of the Master -> the same.
# It runs three scenarios (see below). Then, in the VM (kernel IPVS), the
# share of established connections that survive a kill -9 failover and the
# failback with IPVS connection sync, lbd (vrrp.lvs_sync_daemon) against
# keepalived (lvs_sync_daemon); SYNC=0 skips it, CONNS sets the connections
# held (default 50).
#
# Usage: scripts/bench-vrrp.sh            (N=20 scripts/bench-vrrp.sh for more runs)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "bench-vrrp: needs root (network namespaces)" >&2
  exit 1
fi
N=${N:-20}
KEEPALIVED=${KEEPALIVED:-/usr/sbin/keepalived}
GO=${GO:-go}
prefix="lbdvrb-$$"
tmp=$(mktemp -d)
cleanup() {
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${prefix}-" || true); do
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

"$GO" build -o "$tmp/vrrpd" ./pkg/vrrp/internal/vrrpd
"$GO" build -o "$tmp/vrrpbench" ./pkg/vrrp/internal/vrrpbench
impl=lbd,keepalived
if [ ! -x "$KEEPALIVED" ]; then
  echo "bench-vrrp: $KEEPALIVED not found; measuring lbd only" >&2
  impl=lbd
fi
echo "bench-vrrp: $(date -u +%FT%TZ) $(uname -r) $(nproc) CPUs, $($KEEPALIVED --version 2>&1 | head -1 || true)"
echo "bench-vrrp: load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (a busy host shows up in the worst cases)"
# Scenarios: "mode master-priority backup-priority". The first two use the
# priorities of design.md's example (150/100); the third shows that the
# RFC 5798 timers meet the goals when the Backup's priority is high enough
# (Skew_Time = (256-prio)/256 * advert_int).
for scenario in "multicast 150 100" "unicast 150 100" "multicast 250 200"; do
  read -r mode pm pb <<<"$scenario"
  extra=()
  [ "$mode" = unicast ] && extra=(-unicast)
  timeout 900 "$tmp/vrrpbench" -n "$N" -vrrpd "$tmp/vrrpd" -keepalived "$KEEPALIVED" \
    -impl "$impl" -prefix "$prefix-$mode-$pb" -int 100ms -prio-master "$pm" -prio-backup "$pb" "${extra[@]}"
  echo
done
if [ "${SYNC:-1}" != 0 ]; then
  echo "bench-vrrp: connections through a kill -9 failover and the failback, IPVS sync (in the VM; $(ls /boot/vmlinuz-* | sort -V | tail -1))"
  echo "  synced: the backup's kernel knows the connection before the kill; failover: answer on the backup;"
  echo "  failback: of those, answer again on the restarted first director; new->back: connections opened"
  echo "  through the backup that answer after the failback"
  mkdir -p bin
  "$GO" build -o bin/lbd ./cmd/lbd
  "$GO" build -o bin/syncbench ./pkg/ipvs/internal/syncbench
  scripts/vm/run.sh --timeout 900 -- bin/syncbench -lbd bin/lbd -keepalived "$KEEPALIVED" -conns "${CONNS:-50}"
  echo
fi
echo "bench-vrrp: load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
