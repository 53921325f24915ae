# Haven — the two commands a newcomer runs: `make demo` and `make test`.
BUILD ?= build
JOBS ?= 2

.PHONY: all setup build test demo stress bench clean

all: build

setup:
	@scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 900

demo: build
	@scripts/demo.sh $(BUILD)/haven

stress: build
	@cd $(BUILD) && HAVEN_STRESS=1 ctest --output-on-failure -j$(JOBS)

bench: build
	@bench/run.sh $(BUILD)/haven

clean:
	rm -rf $(BUILD)
