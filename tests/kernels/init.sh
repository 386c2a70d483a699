#!/bin/busybox sh
# PID 1 of the kernel-suite VM (tests/kernels/vm.ts builds it into the initramfs as /init).
#
# Mounts the host's shares over 9p (the project and Deno's directory read-only, the npm cache
# read-only, an output directory read-write), runs tests/kernels/guest.ts with Deno, and powers
# off. Kernel command line:
#   xk.modprobe=1   /sbin/modprobe exists (busybox, with modules.dep and modules.alias), so the
#                   kernel can autoload inet_diag and tcp_diag on the first dump;
#   xk.modprobe=0   no modprobe at all: a kernel whose diag modules nobody loaded.
# Serial console lines from here start with "XK-INIT"; the guest's own lines follow as printed.
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp /run /xk
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/shm /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
hostname xk-guest

say() { echo "XK-INIT $*"; }
finish() {
  # Deno's caches (transpiled modules, V8 code cache) go back for the next boot of this kind.
  for f in /tmp/deno/gen /tmp/deno/*_cache_v2*; do
    [ ! -e "$f" ] || cp -a "$f" /xk/cache/ || say "cannot save $f"
  done
  sync
  say "end uptime=$(cut -d' ' -f1 /proc/uptime)"
  poweroff -f
}

MODPROBE=0
for a in $(cat /proc/cmdline); do
  case "$a" in xk.modprobe=*) MODPROBE=${a#xk.modprobe=} ;; esac
done
say "kernel $(uname -r) modprobe=$MODPROBE uptime=$(cut -d' ' -f1 /proc/uptime)"

# The 9p stack, in dependency order; a module absent from the tree is built in.
MOD=/lib/modules/$(uname -r)
for m in $(cat /xk-modules); do
  f=$MOD/$m.ko
  [ -f "$f" ] || continue
  insmod "$f" || say "insmod $m failed"
done

share() { # share TAG DIR OPTS
  mkdir -p "$2"
  mount -t 9p -o "trans=virtio,version=9p2000.L,msize=512000,$3" "$1" "$2" ||
    { say "cannot mount the 9p share $1"; finish; }
}
share out /xk/out cache=none
share project /xk/project ro,cache=loose
share bin /xk/bin ro,cache=loose
share npm /xk/npm ro,cache=loose
share cache /xk/cache cache=none

if [ "$MODPROBE" = 1 ]; then
  ln -sf /bin/busybox /sbin/modprobe
else
  rm -f /sbin/modprobe /bin/modprobe
fi

ip link set lo up
mkdir -p /tmp/deno /tmp/home
cp -a /xk/cache/. /tmp/deno/ || say "cannot restore Deno's caches"
ln -sfn /xk/npm /tmp/deno/npm
export DENO_DIR=/tmp/deno HOME=/tmp/home NO_COLOR=1 DENO_NO_UPDATE_CHECK=1 DENO_NO_PROMPT=1
say "guest start uptime=$(cut -d' ' -f1 /proc/uptime)"
cd /xk/project
/xk/bin/deno run --no-check --quiet --allow-all tests/kernels/guest.ts /xk/out
say "guest rc=$? uptime=$(cut -d' ' -f1 /proc/uptime)"
finish
