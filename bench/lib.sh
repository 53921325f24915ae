# Shared by the benches (sourced). Memory that was freed a while ago costs a virtual machine's
# guest about 10 ms per MB the first time it is written again (the host takes back free pages
# and faults them in anew): measured here, writing 1 GiB into the page cache took 0.2 s or 8 s
# depending on that alone, whichever tool ran; a PostgreSQL restore (1.5 GB written) took 4.6 s
# after the page cache was dropped and memory left free for 90 s, 2.9 s run again right after
# (pgBackRest lz4: 8.1 and 5.4 s; the repositories were read from disk in the first runs too).
# So before each timed step a ballast file fills free memory down to ~1 GiB: every tool then
# writes into memory reclaimed from the page cache, as on a busy server. The ballast is one file
# as large as the machine's memory, rewritten in turn (disk use stays at that size).
#   ballast_fill FILE: sync, then fill free memory down to ~1 GiB by writing into FILE.
BALLAST_AT=0
BALLAST_BLOCKS=$(awk '/MemTotal/{print int($2/1024/16)}' /proc/meminfo)
ballast_fill() {
  sync
  local free n
  free=$(awk '/MemFree/{print int($2/1024)}' /proc/meminfo)
  if [ "$free" -gt 1536 ]; then
    n=$(((free - 1024) / 16))
    [ $((BALLAST_AT + n)) -gt "$BALLAST_BLOCKS" ] && BALLAST_AT=0
    dd if=/dev/zero of="$1" bs=16M count="$n" seek="$BALLAST_AT" conv=notrunc status=none
    BALLAST_AT=$((BALLAST_AT + n))
    sync
  fi
}
