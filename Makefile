# Makefile: thin wrapper over CMake. `make demo` and `make check` do all set-up on Debian.
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: all deps build demo demo-hello check check-unit check-kvm check-e2e check-asan fuzz \
	fuzz-smoke bench format clean

all: build

deps:
	@bash scripts/install-deps

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j$(JOBS)

# Boot the host's stock Debian kernel under kiln (2 vCPUs) to a busybox init that shows the guest;
# inside the nested QEMU harness where this host's /dev/kvm cannot run Linux.
demo: build
	bash scripts/demo $(BUILD)

# The tiny hello guest: the quickest look at kiln working (any host whose /dev/kvm runs guests).
demo-hello: build
	$(BUILD)/kiln run --kernel $(BUILD)/guests/hello.elf --timeout 60

# The kvm tests run where KVM is real (tests/kvm/README.md); if nowhere, say so in one line.
# Then the sanitizer build's tests and a short run of every fuzzer.
check: build
	cd $(BUILD) && status=0 && { ctest --output-on-failure -j$(JOBS) || status=$$?; } && \
	  { [ ! -f kvm-group/none ] || cat kvm-group/none; } && exit $$status
	$(MAKE) --no-print-directory check-asan
	$(MAKE) --no-print-directory fuzz-smoke

# ASan + UBSan build in $(BUILD)-asan: unit and cli tests, and the kvm tests where KVM is real.
check-asan: deps
	bash scripts/check-asan $(BUILD)-asan

# libFuzzer targets (tests/fuzz) in $(BUILD)-fuzz; fuzz-smoke runs each a fixed number of times.
fuzz: deps
	bash scripts/fuzz build $(BUILD)-fuzz

fuzz-smoke: deps
	bash scripts/fuzz smoke $(BUILD)-fuzz

check-unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit

check-kvm: build
	cd $(BUILD) && ctest --output-on-failure -L kvm

check-e2e: build
	cd $(BUILD) && ctest --output-on-failure -L e2e

bench: build
	$(BUILD)/bench/bench_startup $(BUILD)/kiln $(BUILD)/guests/hello.elf
	bash bench/boot $(BUILD)
	bash bench/blk $(BUILD)
	bash bench/net $(BUILD)
	bash bench/image $(BUILD)
	bash bench/share $(BUILD)
	bash bench/restore $(BUILD)

format:
	clang-format -i include/*.h src/*.[ch] src/*/*.[ch] tests/unit/*.[ch] tests/unit/*/*.[ch] bench/*.c guests/*.c guests/lib/*.[ch]

clean:
	rm -rf $(BUILD)
