# Haven — the two commands a newcomer runs: `make demo` and `make test`.
BUILD ?= build
JOBS ?= 2

FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
# The short run inside `make test`: each target replays its seeds, then fuzzes this long.
FUZZ_SMOKE_SECONDS ?= 2

# Extra CMake arguments (CI passes -DHAVEN_WERROR=ON).
CMAKE_ARGS ?=
# make sanitize: the unit tests TSan runs over (a ctest -R regex). All of them: the concurrent
# ones (Lock, Backup, Restore, Pack, Concurrent, Check, Prune) were the point, the rest
# (repository, limits, time zones...) add half a minute. Narrow it while iterating, e.g.
# TSAN_TESTS='Lock|Prune'.
TSAN_TESTS ?= .
# Left out of the ASan run: a throughput assertion (4 wal-push processes a second) that
# instrumented code cannot meet (2 a second); wal-push itself runs in the other WAL tests.
ASAN_EXCLUDE ?= WalPushKeepsUpSegmentsPerSecond

.PHONY: all setup build test test-fast demo stress bench bench-server bench-replication bench-dr bench-scale bench-latency clean fuzz fuzz-build fuzz-smoke \
	fuzz-corpus check-layers sanitize

all: build

setup:
	@scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

# Who may include whom, and what library code may not do (docs/ARCHITECTURE.md).
check-layers: setup
	@python3 scripts/check-layers.py

test: check-layers build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 900
	@$(MAKE) --no-print-directory fuzz-smoke

# The unit tests alone (no test servers, no CLI end to end): a quick loop while editing.
test-fast: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS) -L unit

# The whole suite under ASan+UBSan (leaks included), then the unit tests and the concurrent
# integration tests (cancellation, sessions, events, ops, the server) under TSan. Nothing is suppressed. atexit_sleep_ms=0: TSan otherwise sleeps a second in every
# exiting process (to catch races at exit), which the CLI cancellation tests count against the
# one second a signalled haven has to stop in.
sanitize: setup
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHAVEN_SANITIZE=address >/dev/null
	@cmake --build build-asan -j$(JOBS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j$(JOBS) --timeout 1800 $(if $(ASAN_EXCLUDE),-E '$(ASAN_EXCLUDE)')
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHAVEN_SANITIZE=thread >/dev/null
	@cmake --build build-tsan -j$(JOBS)
	@cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:atexit_sleep_ms=0 \
	  ctest --output-on-failure -j$(JOBS) --timeout 1800 -L unit -R '$(TSAN_TESTS)'
	@cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:atexit_sleep_ms=0 \
	  ctest --output-on-failure -j$(JOBS) --timeout 1800 -R 'Cancel|SessionsTest|EventsTest|OpsTest|ServerTest'


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
	@BENCH_PROFILE=large bench/run.sh $(BUILD)/haven
	@BENCH_PROFILE=small bench/run.sh $(BUILD)/haven

# The server: API latency with 100,000 executions during a backup, the backup's slowdown under
# that load, the scheduler's fire delay (bench/server.py; about 10 minutes).
# The replication benchmark (bench/replication.py): haven replicate vs rclone sync on disk,
# s3rver and Azurite; snapshot landing to presence in every region; sync mode reads once.
bench-replication: build
	@python3 bench/replication.py $(BUILD)/haven

bench-server: build
	@python3 bench/server.py $(BUILD)/haven

# A disaster-recovery drill of a pgbench scale-100 cluster and a file tree, split into restore,
# WAL replay and validation (bench/dr.sh; BENCH_SCALE, BENCH_TX, BENCH_TREE_MB, BENCH_RUNS).
bench-dr: build
	@bench/dr.sh $(BUILD)/haven

# The scaling curve: backup, unchanged re-backup and restore of generated trees of 50,000 to
# 1,000,000 small files, with peak memory and index bytes per blob (bench/scale.sh; BENCH_FILES).
bench-scale: build
	@bench/scale.sh $(BUILD)/haven

# A restore from s3rver with 30 ms added to every request (bench/latency_proxy.py), against the
# same restore from the local disk, with the requests counted (bench/latency.sh; BENCH_SCALE,
# BENCH_LATENCY_MS, BENCH_ROUNDS).
bench-latency: build
	@bench/latency.sh $(BUILD)/haven

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) build-asan build-tsan
