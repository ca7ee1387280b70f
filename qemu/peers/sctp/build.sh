#!/bin/sh
# Builds the usrsctp peer into target/sctp-peer/sctp-peer when it is missing or older than its
# source; prints its path. Idempotent, quiet when there is nothing to do. Needs a C compiler
# and Debian's libusrsctp-dev (qemu/setup.sh installs both).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
out="$root/target/sctp-peer"
bin="$out/sctp-peer"
src="$here/sctp-peer.c"
if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] || [ "$0" -nt "$bin" ]; then
    mkdir -p "$out"
    # A name of this process's own: tests running in parallel may build at the same time.
    cc -O2 -Wall -Wextra -o "$bin.$$" "$src" -lusrsctp -lpthread
    mv -f "$bin.$$" "$bin"
fi
echo "$bin"
