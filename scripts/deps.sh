#!/usr/bin/env bash
# Installs the Debian packages that lbd's tests, benchmarks and demo need.
# Idempotent: does nothing when every tool is already present.
set -euo pipefail

# command -> package that provides it
declare -A need=(
  [qemu-system-x86_64]=qemu-system-x86
  [busybox]=busybox-static
  [ipvsadm]=ipvsadm
  [iptables]=iptables
  [ipset]=ipset
  [memcached]=memcached
  [memccapable]=libmemcached-tools
  [keepalived]=keepalived
  [ip]=iproute2
  [modprobe]=kmod
  [sysctl]=procps
  # scripts/vm/run.sh packs the VM's initramfs, unpacking .ko.xz modules.
  [cpio]=cpio
  [xz]=xz-utils
  # The panel's browser tests (cmd/lbd TestPanelInBrowser) drive Debian's Chromium.
  [chromium]=chromium
  # make deb and its test (packaging/): man pages rendered with man -l,
  # the unit checked with systemd-analyze, the lbd group made by groupadd.
  [dpkg-deb]=dpkg
  [man]=man-db
  [systemd-analyze]=systemd
  [groupadd]=passwd
  [objdump]=binutils
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
# The VM boots Debian's stock kernel, which ships the ip_vs modules.
ls /boot/vmlinuz-* >/dev/null 2>&1 || missing+=(linux-image-amd64)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: need root to install: ${missing[*]}" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
