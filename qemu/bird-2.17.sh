#!/usr/bin/env bash
# Builds BIRD 2.17.5 with BMP, the BIRD the BGP and BMP benches compare Bulkhead with (Debian 12's
# bird2 is 2.0.12 and has no BMP). The source is Debian 13's package, fetched from the Debian pool
# and checked against the hashes pinned below (the trixie index has moved on to a later version,
# so `apt-get source bird2=2.17.5-0+deb13u1` no longer finds it; the pool still holds it).
#
#   qemu/bird-2.17.sh [DIR]    install into DIR (default target/bird-2.17.5): DIR/sbin/bird, birdc
#
# Idempotent: does nothing when DIR/sbin/bird exists and reports 2.17.5. Needs root only to install
# the build dependencies (autoconf, bison, flex, m4, libncurses-dev, libreadline-dev) when missing.
set -euo pipefail

version=2.17.5
debian_revision=0+deb13u1
out=${1:-target/bird-$version}
pool=http://deb.debian.org/debian/pool/main/b/bird2
orig=bird2_$version.orig.tar.gz
orig_sha256=92ca93118a6b168ae5425c09e63e2365ee8ee16d1ff7f15820936c5d9495ba83
debian=bird2_$version-$debian_revision.debian.tar.xz
debian_sha256=41b2644fcb5d34d4397b6e8c0c893758c1806e16541e6ddea2efb709e77948bd

if [[ -x $out/sbin/bird ]] && "$out/sbin/bird" --version 2>&1 | grep -q "$version"; then
    exit 0
fi

missing=()
for pkg in autoconf bison flex m4 make gcc libncurses-dev libreadline-dev curl xz-utils; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "qemu/bird-2.17.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

fetch() {
    local file=$1 sha256=$2
    curl -fsS -o "$file" "$pool/$file"
    echo "$sha256  $file" | sha256sum -c --quiet - || {
        echo "qemu/bird-2.17.sh: $file does not match its pinned SHA-256" >&2
        exit 1
    }
}
fetch "$orig" "$orig_sha256"
fetch "$debian" "$debian_sha256"

mkdir source
tar -xzf "$orig" -C source --strip-components=1
cd source
# Debian's patches, in their series order.
tar -xJf "../$debian"
if [[ -f debian/patches/series ]]; then
    while read -r patch _; do
        [[ -z $patch || $patch == \#* ]] && continue
        patch -p1 -s < "debian/patches/$patch"
    done < debian/patches/series
fi

# The upstream tarball ships configure.ac only; Debian's build runs autoreconf too.
[[ -x configure ]] || autoreconf -i >/dev/null 2>&1
./configure -q --prefix="$out" --sysconfdir="$out/etc" --runstatedir="$out/run" \
    --with-protocols=bgp,bmp,static,pipe,mrt --disable-libssh >/dev/null
if ! { make -s -j"$(nproc)" && make -s install; } >"$work/build.log" 2>&1; then
    tail -40 "$work/build.log" >&2
    echo "qemu/bird-2.17.sh: the build failed" >&2
    exit 1
fi
"$out/sbin/bird" --version
