#!/usr/bin/env bash
# Builds the Linux router VM that `make bench` compares Bulkhead with: Debian's own kernel
# (linux-image-amd64, every virtio driver a module) and a busybox initramfs whose init loads the
# virtio-net modules, numbers eth0 and eth1 like the appliance's nic0 and nic1, and turns on
# ip_forward. Output: DIR/vmlinuz and DIR/initramfs.cpio.gz (default bench/out/linux-router).
# Idempotent: does nothing when both exist.
set -euo pipefail

out=${1:-bench/out/linux-router}
if [[ -s $out/vmlinuz && -s $out/initramfs.cpio.gz ]]; then
    exit 0
fi
missing=()
for pkg in busybox-static cpio; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
done
if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
out=$(cd "$out" && pwd)
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
cat > initramfs/init <<'INIT'
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
echo "linux-router: ready"
while read -r line; do
    case "$line" in
        poweroff) poweroff -f ;;
    esac
done
sleep 100000
INIT
chmod +x initramfs/init
(cd initramfs && find . | cpio -o -H newc --quiet | gzip -1) > "$out/initramfs.cpio.gz"
cp "root/boot/vmlinuz-$release" "$out/vmlinuz"
echo "linux-router: built $out from $kernel"
