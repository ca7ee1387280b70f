#!/usr/bin/env bash
# Installs what the QEMU test bed and `make image` need on a Debian 12 machine, as root (or
# through sudo). Idempotent: installs only what is missing and is quiet when nothing is.
set -euo pipefail

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "qemu/setup.sh: need root (or sudo) to run: $*" >&2
        exit 1
    fi
}

# Debian packages: qemu-system-x86 (qemu-system-x86_64), qemu-system-data (ships
# /usr/share/qemu/qboot.rom and SeaBIOS), iproute2 (ip netns), iputils-ping, iperf3, procps;
# the BGP tests' peers: bird2, gobgpd, frr (bgpd, run standalone), exabgp, python3 (scripted peer);
# the BMP tests' collector and decoder: pmacct (pmbmpd), tshark; nftables (random loss where the
# kernel has no sch_netem; the path MTU tests' counter and ICMP drop in the router namespace);
# binutils (objcopy: `make image` strips the image it copies).
wanted=(qemu-system-x86 qemu-system-data iproute2 iputils-ping iperf3 procps gcc libc6-dev libusrsctp-dev bird2 gobgpd frr exabgp python3 pmacct tshark nftables binutils)
missing=()
for pkg in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    echo "qemu/setup.sh: installing ${missing[*]}"
    as_root apt-get update -qq
    # iperf3 asks whether to start a daemon; the answer is no.
    echo 'iperf3 iperf3/start_daemon boolean false' | as_root debconf-set-selections
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

for file in /usr/bin/qemu-system-x86_64 /usr/share/qemu/qboot.rom; do
    [[ -e $file ]] || { echo "qemu/setup.sh: $file is still missing" >&2; exit 1; }
done

# Rust: the image builds for x86_64-unknown-none; clippy and rustfmt keep the tree clean.
if ! command -v cargo >/dev/null 2>&1; then
    if [[ -x $HOME/.cargo/bin/cargo ]]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "qemu/setup.sh: cargo not found. Debian 12 has no rustup package: install rustup" >&2
        echo "  from the Rust project, then run this script again." >&2
        exit 1
    fi
fi
if command -v rustup >/dev/null 2>&1; then
    installed_targets=$(rustup target list --installed)
    grep -qx x86_64-unknown-none <<<"$installed_targets" || rustup target add x86_64-unknown-none
    installed_components=$(rustup component list --installed)
    for component in clippy rustfmt; do
        grep -q "^$component" <<<"$installed_components" || rustup component add "$component"
    done
else
    echo "qemu/setup.sh: cargo without rustup: make sure the x86_64-unknown-none target," >&2
    echo "  clippy and rustfmt are installed." >&2
fi
