#!/bin/sh
# /init of lbd's test VM (see scripts/vm/run.sh). Runs as PID 1 from the
# initramfs: mounts the host's root read-only over 9p with a tmpfs overlay on
# top, chroots into it and runs the job script that run.sh wrote, then powers
# off. Everything the job writes is lost except what goes to the serial port
# (ttyS1, the caller's stdout) or to the optional writable 9p share.
export PATH=/bin
fail() { echo "LBD-VM-INIT-FAILED: $*" >&3; echo "LBD-VM-INIT-FAILED: $*" >&2; poweroff -f; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# ttyS1 carries the job's output and the exit marker to run.sh; the kernel's
# console (ttyS0) goes to a boot log. Raw, so bytes pass unchanged.
stty -F /dev/ttyS1 raw -echo 2>/dev/null
exec 3>/dev/ttyS1
echo 1 > /proc/sys/kernel/printk

for m in $(cat /modules.order); do
	insmod "/modules/$m" || fail "insmod $m"
done

job= out=
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	lbd.job=*) job="${arg#lbd.job=}" ;;
	lbd.out=*) out="${arg#lbd.out=}" ;;
	esac
done
[ -n "$job" ] || fail "no lbd.job= on the kernel command line"

mkdir -p /lower /upper /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 host /lower || fail "mount 9p host root"
mount -t tmpfs -o mode=0755 tmpfs /upper || fail "mount tmpfs upper"
mkdir -p /upper/upper /upper/work
mount -t overlay -o lowerdir=/lower,upperdir=/upper/upper,workdir=/upper/work overlay /newroot || fail "mount overlay"
cp "/lower$job" /job.sh || fail "read job $job"

mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /newroot/dev/shm
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
mount -t tmpfs -o mode=0755 tmpfs /newroot/run
cp /job.sh /newroot/run/lbd-vm-job.sh
if [ -n "$out" ]; then
	mkdir -p "/newroot$out"
	mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out "/newroot$out" || fail "mount out share at $out"
fi
# The kernel loads modules on demand (IPVS schedulers, for one) by running
# /sbin/modprobe from PID 1's root, the initramfs: hand that to the host's
# modprobe inside the new root.
mkdir -p /sbin
printf '#!/bin/sh\nexec /bin/chroot /newroot /sbin/modprobe "$@"\n' > /sbin/modprobe
chmod 0755 /sbin/modprobe
echo /sbin/modprobe > /proc/sys/kernel/modprobe
hostname lbd-vm
ip link set lo up

echo "LBD-VM-START" >&3
chroot /newroot /bin/bash /run/lbd-vm-job.sh < /newroot/dev/null >&3 2>&1
rc=$?
sync
echo "LBD-VM-EXIT=$rc" >&3
poweroff -f
