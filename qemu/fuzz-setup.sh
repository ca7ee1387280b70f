#!/usr/bin/env bash
# What `make fuzz` needs beyond qemu/setup.sh: a nightly toolchain (libFuzzer's sanitizer
# flags) and cargo-fuzz. Idempotent and quiet when both are there.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"
command -v rustup >/dev/null 2>&1 || { echo "qemu/fuzz-setup.sh: rustup is needed for a nightly toolchain" >&2; exit 1; }
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
