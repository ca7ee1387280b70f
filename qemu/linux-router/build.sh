#!/usr/bin/env bash
# Builds the Linux router VM that `make bench` compares Bulkhead with: Debian's own kernel
# (linux-image-amd64, every virtio driver a module) and a busybox initramfs whose init loads the
# virtio-net modules, numbers eth0 and eth1 like the appliance's nic0 and nic1, and turns on
# ip_forward. Output: DIR/vmlinuz and DIR/initramfs.cpio.gz (default bench/out/linux-router).
#
#   qemu/linux-router/build.sh [--bird BIRD_DIR] [DIR]
#
# With --bird, also DIR/initramfs-bird.cpio.gz for the BGP bench: the same initramfs followed by
# a second archive (the kernel unpacks concatenated archives in order, later files replacing
# earlier ones) that adds BIRD_DIR/sbin/bird and birdcl with the shared libraries `ldd` lists
# for them, and an init that also answers two commands on the serial console:
#
#   bird-config            then the lines of a BIRD configuration, then `bird-config-end`:
#                          writes /etc/bird.conf and starts BIRD (control socket /run/bird.ctl)
#   birdc ARGS             runs `birdcl ARGS`
#
# each answered by lines that start with `bird| ` and end with the line `bird| end`.
# Idempotent: does nothing when the outputs exist and are newer than their inputs.
set -euo pipefail

bird=
if [[ ${1:-} == --bird ]]; then
    bird=${2:?--bird needs a directory}
    shift 2
fi
out=${1:-bench/out/linux-router}
script=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

# The init, to standard output; with the argument `bird`, the one of the BIRD initramfs.
write_init() {
    cat <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_ring virtio_pci_modern_dev virtio_pci_legacy_dev virtio virtio_pci failover net_failover virtio_net; do
    insmod /modules/$m.ko
done
for i in 1 2 3 4 5 6 7 8 9 10; do
    [ -e /sys/class/net/eth1 ] && break
    sleep 1
done
ip link set lo up
ip addr add 192.0.2.1/24 dev eth0
ip link set eth0 up
ip addr add 198.51.100.1/24 dev eth1
ip link set eth1 up
echo 1 > /proc/sys/net/ipv4/ip_forward
echo "linux-router: interfaces $(ls /sys/class/net)"
INIT
    if [[ ${1:-} == bird ]]; then
        cat <<'INIT'
mkdir -p /run /etc /tmp
echo "linux-router: $(/sbin/bird --version 2>&1)"
INIT
    fi
    echo 'echo "linux-router: ready"'
    echo 'while read -r line; do'
    echo '    case "$line" in'
    if [[ ${1:-} == bird ]]; then
        cat <<'INIT'
        bird-config)
            : > /etc/bird.conf
            while read -r conf; do
                [ "$conf" = bird-config-end ] && break
                echo "$conf" >> /etc/bird.conf
            done
            if /sbin/bird -c /etc/bird.conf -s /run/bird.ctl -P /run/bird.pid > /tmp/bird.out 2>&1; then
                for i in $(seq 1 120); do
                    /sbin/birdcl -s /run/bird.ctl show status >/dev/null 2>&1 && break
                    sleep 0.5
                done
                /sbin/birdcl -s /run/bird.ctl show status 2>&1 | sed 's/^/bird| /'
            else
                sed 's/^/bird| /' /tmp/bird.out
                echo "bird| failed to start"
            fi
            echo "bird| end"
            ;;
        birdc\ *)
            /sbin/birdcl -s /run/bird.ctl ${line#birdc } 2>&1 | sed 's/^/bird| /'
            echo "bird| end"
            ;;
INIT
    fi
    cat <<'INIT'
        poweroff) poweroff -f ;;
    esac
done
sleep 100000
INIT
}

build_base() {
    local missing=() work kernel release modules module
    for pkg in busybox-static cpio; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    cd "$work"
    kernel=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    apt-get download -q "$kernel" >/dev/null
    dpkg-deb -x ./*.deb root
    release=${kernel#linux-image-}

    mkdir -p initramfs/bin initramfs/proc initramfs/sys initramfs/dev initramfs/modules
    cp /bin/busybox initramfs/bin/busybox
    for tool in sh mount insmod ip echo cat sleep poweroff read ls; do
        ln -s busybox "initramfs/bin/$tool"
    done
    modules=root/lib/modules/$release/kernel
    for module in drivers/virtio/virtio.ko drivers/virtio/virtio_ring.ko \
        drivers/virtio/virtio_pci_modern_dev.ko drivers/virtio/virtio_pci_legacy_dev.ko \
        drivers/virtio/virtio_pci.ko net/core/failover.ko drivers/net/net_failover.ko \
        drivers/net/virtio_net.ko; do
        cp "$modules/$module" initramfs/modules/
    done
    write_init > initramfs/init
    chmod +x initramfs/init
    (cd initramfs && find . | cpio -o -H newc --quiet | gzip -1) > "$out/initramfs.cpio.gz"
    cp "root/boot/vmlinuz-$release" "$out/vmlinuz"
    echo "linux-router: built $out from $kernel"
    cd - >/dev/null
    rm -rf "$work"
    trap - EXIT
}

# The BIRD archive after the base one; rebuilt when BIRD, the base or this script is newer.
build_bird() {
    local target=$out/initramfs-bird.cpio.gz work file lib
    if [[ -s $target && $target -nt $bird/sbin/bird && $target -nt $out/initramfs.cpio.gz &&
        $target -nt $script ]]; then
        return 0
    fi
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/root/sbin" "$work/root/bin" "$work/root/run" "$work/root/etc" "$work/root/tmp"
    for file in bird birdcl; do
        cp "$bird/sbin/$file" "$work/root/sbin/$file"
        # Every library `ldd` names (an absolute path: `name => /path (addr)` or `/path (addr)`).
        for lib in $(ldd "$bird/sbin/$file" | grep -o '/[^ ]*'); do
            mkdir -p "$work/root$(dirname "$lib")"
            cp -L "$lib" "$work/root$lib"
        done
    done
    for tool in mkdir sed seq; do
        ln -s busybox "$work/root/bin/$tool"
    done
    write_init bird > "$work/root/init"
    chmod +x "$work/root/init"
    (cd "$work/root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/bird.cpio.gz"
    cat "$out/initramfs.cpio.gz" "$work/bird.cpio.gz" > "$target.new"
    mv "$target.new" "$target"
    rm -rf "$work"
    trap - EXIT
    echo "linux-router: built $target with $("$bird/sbin/bird" --version 2>&1)"
}

mkdir -p "$out"
out=$(cd "$out" && pwd)
if [[ -n $bird ]]; then
    bird=$(cd "$bird" && pwd)
    [[ -x $bird/sbin/bird && -x $bird/sbin/birdcl ]] || {
        echo "linux-router: no $bird/sbin/bird and birdcl" >&2
        exit 1
    }
fi
if [[ ! -s $out/vmlinuz || ! -s $out/initramfs.cpio.gz ]]; then
    build_base
fi
if [[ -n $bird ]]; then
    build_bird
fi
