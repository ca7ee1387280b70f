# Bulkhead: the operator's and developer's entry points.
#   make run    build the image and boot it on the demo topology (interactive console)
#   make test   host unit tests, clippy, rustfmt, and the QEMU integration tests
#   make bench  Bulkhead against the alternatives, in one run; JSON under bench/out/
#   make fuzz   every parser's coverage-guided fuzz target, FUZZ_SECONDS each (cargo-fuzz)
# Every target installs what it needs first (qemu/setup.sh, idempotent).

TARGET  := x86_64-unknown-none
IMAGE   := images/out/bulkhead.elf
CARGO   ?= cargo
# Host crates: everything but the kernel and the image, which build for $(TARGET) only.
HOST_EXCLUDE := --exclude bulkhead-kernel --exclude bulkhead-image
QEMU_TEST_THREADS ?= 2

.PHONY: all setup image run test unit lint qemu-test scenario bench fuzz clean

all: image

setup:
	@qemu/setup.sh

# The image is the build's ELF without its symbol table (the unstripped one stays in the
# target directory, for addr2line and gdb).
image: setup
	$(CARGO) build --release -p bulkhead-image --target $(TARGET)
	@mkdir -p images/out
	@objcopy --strip-all $${CARGO_TARGET_DIR:-target}/$(TARGET)/release/bulkhead $(IMAGE)
	@echo "image: $(IMAGE) ($$(stat -c %s $(IMAGE)) bytes)"

run: image
	qemu/run $(RUN_ARGS)

test: setup unit lint image qemu-test

unit: setup
	$(CARGO) test --workspace $(HOST_EXCLUDE) --exclude bulkhead-testbed
	$(CARGO) test -p bulkhead-testbed --lib

lint: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace $(HOST_EXCLUDE) --all-targets -- -D warnings
	$(CARGO) clippy -p bulkhead-kernel -p bulkhead-image --target $(TARGET) -- -D warnings

qemu-test: image
	$(CARGO) test -p bulkhead-testbed --tests -- --test-threads=$(QEMU_TEST_THREADS)

# The seed scenarios at full length.
scenario: image
	BULKHEAD_SEED_SECONDS=60 $(CARGO) test -p bulkhead-testbed --test seeds -- --nocapture
	BULKHEAD_BMP_SEED_PREFIXES=250000 $(CARGO) test -p bulkhead-testbed --test bmp -- --nocapture \
		bird_feeds_pmbmpd_gets_every_prefix_and_the_stalled_session_is_dropped

# Everything the benches run is built here first (the traffic generator, the run helper).
bench: image
	@mkdir -p bench/out
	$(CARGO) build --release -p bulkhead-testbed --bins
	$(CARGO) run --release -p bulkhead-bench -- all --out bench/out

# Every parser's fuzz target, as DIR:TARGET; each runs FUZZ_SECONDS from its committed corpus.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := net/forward/fuzz:frame apps/fuzz:config apps/fuzz:console apps/fuzz:local \
	net/sctp/fuzz:packet net/sctp/fuzz:endpoint net/bgp/fuzz:message net/bgp/fuzz:session \
	net/bmp/fuzz:message kernel/mem/fuzz:ops

fuzz: setup
	@qemu/fuzz-setup.sh
	@set -e; for t in $(FUZZ_TARGETS); do \
		dir=$${t%%:*}; name=$${t##*:}; \
		echo "== fuzz $$dir $$name ($(FUZZ_SECONDS) s)"; \
		(cd $$dir && cargo +nightly fuzz run $$name corpus/$$name -- -max_total_time=$(FUZZ_SECONDS)); \
	done

clean:
	$(CARGO) clean
	rm -rf images/out bench/out
