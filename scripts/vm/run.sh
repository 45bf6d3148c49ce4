#!/usr/bin/env bash
# Runs one command as root inside a throwaway VM that boots Debian's stock
# kernel (which, unlike the host's, has IPVS), with the host's root file system
# mounted read-only over 9p under a tmpfs overlay. The command's output streams
# to stdout and its exit status becomes this script's exit status.
#
#   scripts/vm/run.sh [--mem MiB] [--smp N] [--timeout SECONDS] [--out DIR]
#                     [-e NAME=VALUE]... -- CMD [ARGS...]
#
# The command runs in the caller's working directory (which must not be under
# /tmp or /run: those are fresh tmpfs in the guest). Files it writes vanish
# with the VM, except under --out DIR, which is shared read-write with the
# host at the same path. Exit status 125 means the VM failed (boot failure,
# timeout, qemu error); the boot log is printed on stderr then.
#
# Environment: LBD_VM_KERNEL (path to a vmlinuz; default: the newest
# /boot/vmlinuz-* whose modules ship ip_vs), LBD_VM_DIR (cache dir; default
# bin/vm in the repository), LBD_VM_ACCEL (default tcg: on this host the
# guest hangs under kvm), LBD_VM_CPU (default max), LBD_VM_KEEP=1 (keep the
# job script and the boot log in the cache dir, for debugging).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
mem=1024 smp=2 timeout=600 out=""
envs=()
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//' >&2; exit 125; }
while [ $# -gt 0 ]; do
	case "$1" in
	--mem) mem="$2"; shift 2 ;;
	--smp) smp="$2"; shift 2 ;;
	--timeout) timeout="$2"; shift 2 ;;
	--out) out="$2"; shift 2 ;;
	-e) envs+=("$2"); shift 2 ;;
	--) shift; break ;;
	-h|--help) usage ;;
	*) echo "vm: unknown option $1" >&2; usage ;;
	esac
done
[ $# -gt 0 ] || usage
die() { echo "vm: $*" >&2; exit 125; }

cwd="$(pwd -P)"
case "$cwd/" in
/tmp/*|/run/*|/proc/*|/sys/*|/dev/*) die "working directory $cwd is hidden inside the VM (tmpfs); run from elsewhere" ;;
esac
if [ -n "$out" ]; then
	mkdir -p "$out"
	out="$(cd "$out" && pwd -P)"
fi

# --- the kernel and its modules -------------------------------------------
kernel="${LBD_VM_KERNEL:-}"
if [ -z "$kernel" ]; then
	for k in $(ls -1v /boot/vmlinuz-* 2>/dev/null | sort -rV); do
		v="${k#/boot/vmlinuz-}"
		if [ -d "/lib/modules/$v/kernel/net/netfilter/ipvs" ]; then kernel="$k"; break; fi
	done
fi
[ -n "$kernel" ] && [ -r "$kernel" ] || die "no /boot/vmlinuz-* with ip_vs modules (apt-get install linux-image-amd64)"
kver="${kernel#/boot/vmlinuz-}"
moddir="/lib/modules/$kver"
[ -r "$moddir/modules.dep" ] || die "no $moddir/modules.dep for $kernel"
busybox="$(command -v busybox || true)"
[ -n "$busybox" ] || die "busybox not found (apt-get install busybox-static)"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"

# Modules the initramfs loads, dependencies first, from the kernel's modules.dep.
want=(virtio_pci netfs fscache 9pnet 9pnet_virtio 9p overlay)
declare -A seen=()
order=()
resolve() { # $1: path relative to $moddir as in modules.dep
	local m="$1" line deps d
	[ -n "${seen[$m]:-}" ] && return 0
	seen[$m]=1
	line="$(grep -m1 "^$m:" "$moddir/modules.dep" || true)"
	deps="${line#*:}"
	for d in $deps; do resolve "$d"; done
	order+=("$m")
}
for w in "${want[@]}"; do
	p="$(grep -m1 -E "^[^:]*/${w}\.ko(\.xz|\.zst|\.gz)?:" "$moddir/modules.dep" | cut -d: -f1 || true)"
	if [ -z "$p" ]; then
		grep -qE "/${w}\.ko" "$moddir/modules.builtin" 2>/dev/null && continue
		die "module $w not found in $moddir"
	fi
	resolve "$p"
done

# --- the initramfs, cached by the hash of everything that goes into it ----
cache="${LBD_VM_DIR:-$repo/bin/vm}"
mkdir -p "$cache"
key="$( { echo "$kver"; sha256sum "$here/init.sh" "$busybox"; for m in "${order[@]}"; do stat -c '%n %s %Y' "$moddir/$m"; done; } | sha256sum | cut -c1-16)"
initrd="$cache/initramfs-$kver-$key.cpio.gz"
if [ ! -s "$initrd" ]; then
	echo "vm: building $initrd" >&2
	stage="$(mktemp -d "$cache/stage.XXXXXX")"
	trap 'rm -rf "$stage"' EXIT
	mkdir -p "$stage"/{bin,dev,proc,sys,modules}
	cp "$busybox" "$stage/bin/busybox"
	for a in $("$busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$stage/bin/$a"; done
	: > "$stage/modules.order"
	for m in "${order[@]}"; do
		b="$(basename "$m")"
		case "$b" in
		*.ko.xz) xz -dc "$moddir/$m" > "$stage/modules/${b%.xz}"; b="${b%.xz}" ;;
		*.ko.zst) zstd -qdc "$moddir/$m" > "$stage/modules/${b%.zst}"; b="${b%.zst}" ;;
		*.ko.gz) gzip -dc "$moddir/$m" > "$stage/modules/${b%.gz}"; b="${b%.gz}" ;;
		*) cp "$moddir/$m" "$stage/modules/$b" ;;
		esac
		echo "$b" >> "$stage/modules.order"
	done
	install -m 0755 "$here/init.sh" "$stage/init"
	(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 > "$initrd.tmp"
	mv "$initrd.tmp" "$initrd"
	rm -rf "$stage"
	trap - EXIT
	# Older images of this kernel are stale now.
	for old in "$cache"/initramfs-"$kver"-*.cpio.gz; do [ "$old" = "$initrd" ] || rm -f "$old"; done
fi

# --- the job: a script on the host's disk that the guest reads over 9p -----
jobs="$cache/jobs"
mkdir -p "$jobs"
job="$(mktemp "$jobs/job.XXXXXX")"
bootlog="$job.boot.log"
rcfile="$job.rc"
cleanup() { [ -n "${LBD_VM_KEEP:-}" ] || rm -f "$job" "$bootlog" "$rcfile"; }
trap cleanup EXIT
{
	echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/go/bin'
	echo 'export HOME=/root TERM=dumb LANG=C.UTF-8 LBD_IN_VM=1'
	for e in "${envs[@]}"; do printf 'export %q\n' "$e"; done
	printf 'cd %q || exit 125\n' "$cwd"
	printf 'exec'; printf ' %q' "$@"; printf '\n'
} > "$job"

append="console=ttyS0 quiet panic=-1 lbd.job=$job"
share=()
if [ -n "$out" ]; then
	share=(-virtfs "local,path=$out,mount_tag=out,security_model=none,multidevs=remap")
	append="$append lbd.out=$out"
fi

# ttyS0 (kernel console) goes to the boot log, ttyS1 (the job) to the filter.
set +e
timeout -k 10 "$timeout" qemu-system-x86_64 \
	-machine "accel=${LBD_VM_ACCEL:-tcg}" -cpu "${LBD_VM_CPU:-max}" -smp "$smp" -m "$mem" \
	-display none -monitor none -no-reboot -net none \
	-kernel "$kernel" -initrd "$initrd" -append "$append" \
	-virtfs "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap" \
	"${share[@]}" \
	-serial "file:$bootlog" -serial stdio < /dev/null 2>>"$bootlog" |
	{
		started=0
		while IFS= read -r line || [ -n "$line" ]; do
			case "$line" in
			*LBD-VM-EXIT=*)
				pre="${line%%LBD-VM-EXIT=*}"
				[ -n "$pre" ] && printf '%s\n' "$pre"
				echo "${line##*LBD-VM-EXIT=}" | tr -dc '0-9' > "$rcfile"
				;;
			LBD-VM-START*) started=1 ;;
			*) printf '%s\n' "$line" ;;
			esac
		done
	}
qrc=${PIPESTATUS[0]}
set -e
if [ -s "$rcfile" ]; then
	exit "$(cat "$rcfile")"
fi
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
	echo "vm: timed out after ${timeout}s; last lines of the boot log:" >&2
else
	echo "vm: the VM stopped without an exit status (qemu exit $qrc); last lines of the boot log:" >&2
fi
tail -n 40 "$bootlog" >&2 || true
exit 125
