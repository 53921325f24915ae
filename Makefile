# Haven — the two commands a newcomer runs: `make demo` and `make test`.
BUILD ?= build
JOBS ?= 2

FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
# The short run inside `make test`: each target replays its seeds, then fuzzes this long.
FUZZ_SMOKE_SECONDS ?= 2

.PHONY: all setup build test demo stress bench clean fuzz fuzz-build fuzz-smoke fuzz-corpus

all: build

setup:
	@scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 900
	@$(MAKE) --no-print-directory fuzz-smoke

# libFuzzer targets (fuzz/): a separate clang build with ASan and UBSan in $(FUZZ_BUILD).
fuzz-build: setup
	@cmake -S . -B $(FUZZ_BUILD) -DHAVEN_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS)

fuzz: fuzz-build
	@fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

fuzz-smoke: fuzz-build
	@fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SMOKE_SECONDS)

# Rewrites the seed corpus from Haven's encoders (new random salts: commit only on purpose).
fuzz-corpus: fuzz-build
	@$(FUZZ_BUILD)/fuzz/fuzz_gen_corpus fuzz/corpus

demo: build
	@scripts/demo.sh $(BUILD)/haven

stress: build
	@cd $(BUILD) && HAVEN_STRESS=1 ctest --output-on-failure -j$(JOBS)

bench: build
	@bench/run.sh $(BUILD)/haven

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD)
