#!/usr/bin/env python3
"""Builds the benchmark corpus, or applies the ~1% change to it.

  corpus.py make DIR [--scale MB]   real system files, random incompressible files, a large
                                    compressible log, and a database (SQLite) file
  corpus.py make-small DIR [--files N]
                                    N small files (default 60,000; ~6 KiB on average, 100 to a
                                    directory): source-like text, config files, random binaries
  corpus.py change DIR              changes ~1% of the corpus: appends to the log, updates rows
                                    spread over the database, edits a few system files, adds one;
                                    in a small-file corpus, edits 1% of the files and adds 0.1%
  corpus.py changed OLD NEW         bytes that differ between two copies, counted in 4 KiB blocks
                                    (plus growth), i.e. what a perfect incremental must store
"""
import os, random, shutil, sqlite3, sys

def make(root, scale_mb):
    rnd = random.Random(42)
    os.makedirs(root, exist_ok=True)
    # 1. Real system files (binaries, libraries, docs): ~40% of the corpus.
    budget = scale_mb * 4 // 10 << 20
    sysdir = os.path.join(root, "system")
    used = 0
    for src in ("/usr/lib/x86_64-linux-gnu", "/usr/share/doc", "/usr/bin", "/usr/share/locale", "/usr/lib/python3"):
        for dirpath, dirs, files in os.walk(src):
            dirs.sort()
            for f in sorted(files):
                p = os.path.join(dirpath, f)
                if os.path.islink(p) or not os.path.isfile(p):
                    continue
                try:
                    size = os.path.getsize(p)
                except OSError:
                    continue
                if size > 64 << 20 or used + size > budget:
                    continue
                dst = os.path.join(sysdir, os.path.relpath(p, "/"))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                try:
                    shutil.copy2(p, dst)
                    used += size
                except OSError:
                    pass
    # 2. Random incompressible files: ~20%.
    rdir = os.path.join(root, "random")
    os.makedirs(rdir, exist_ok=True)
    total = scale_mb * 2 // 10 << 20
    n = 0
    while total > 0:
        size = min(total, rnd.choice([1, 4, 16, 64]) << 20)
        with open(os.path.join(rdir, "blob%03d.bin" % n), "wb") as f:
            f.write(os.urandom(size))
        total -= size
        n += 1
    # 3. A large compressible log: ~25%.
    words = ["GET", "POST", "/api/v1/items", "/login", "200", "404", "500", "user=alice", "user=bob",
             "latency_ms=", "db", "cache-miss", "cache-hit", "session", "ok", "retry"]
    target = scale_mb * 25 // 100 << 20
    with open(os.path.join(root, "app.log"), "w") as f:
        written, i = 0, 0
        while written < target:
            line = "2026-11-%02d %02d:%02d:%02d.%03d host%d %s\n" % (
                1 + i // 400000 % 28, i // 3600 % 24, i // 60 % 60, i % 60, i % 1000, i % 7,
                " ".join(rnd.choice(words) + (str(rnd.randint(0, 999)) if rnd.random() < 0.3 else "") for _ in range(8)))
            f.write(line)
            written += len(line)
            i += 1
    # 4. A database-like file (SQLite, 4 KiB pages): ~15%.
    db = os.path.join(root, "app.db")
    con = sqlite3.connect(db)
    con.execute("PRAGMA page_size=4096")
    con.execute("CREATE TABLE accounts(id INTEGER PRIMARY KEY, name TEXT, balance INTEGER, note TEXT)")
    target = scale_mb * 15 // 100 << 20
    rows = target // 230
    con.executemany("INSERT INTO accounts VALUES(?,?,?,?)",
                    ((i, "user%08d" % i, rnd.randint(0, 10**6), os.urandom(60).hex() + " note " * 10)
                     for i in range(rows)))
    con.commit()
    con.close()

WORDS = ("int", "return", "static", "const", "void", "if", "else", "for", "while", "struct",
         "namespace", "std::string", "size_t", "error", "value", "config", "path", "buffer", "len",
         "#include", "template", "auto", "nullptr", "true", "false", "// TODO", "assert", "data")

def small_file(rnd, size):
    kind = rnd.random()
    if kind < 0.25:
        return os.urandom(size)  # icons, compressed archives, keys
    out, n = [], 0
    while n < size:  # source-like or config-like text
        line = "    " * rnd.randint(0, 3) + " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(2, 9)))
        line += " %d;\n" % rnd.randint(0, 99999) if rnd.random() < 0.3 else "\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]

def make_small(root, files):
    rnd = random.Random(43)
    for i in range(files):
        d = os.path.join(root, "small", "d%03d" % (i // 10000), "d%03d" % (i // 100 % 100))
        if i % 100 == 0:
            os.makedirs(d, exist_ok=True)
        # Log-normal sizes around 3 KiB (median), 64 bytes to 256 KiB: most files are small.
        size = int(min(256 << 10, max(64, rnd.lognormvariate(8.0, 1.2))))
        with open(os.path.join(d, "f%05d.%s" % (i, rnd.choice(["c", "h", "txt", "conf", "json", "bin"]))), "wb") as f:
            f.write(small_file(rnd, size))

def make_tree(root, files):
    """`files` small files (512 B to 4 KiB, half random, half repeated text), 100 to a
    directory, 100 directories to a parent: the scaling curve's trees (bench/scale.sh)."""
    rnd = random.Random(44)
    text = b"the quick brown fox jumps over the lazy dog; " * 100
    for i in range(files):
        d = os.path.join(root, "d%04d" % (i // 10000), "d%03d" % (i // 100 % 100))
        if i % 100 == 0:
            os.makedirs(d, exist_ok=True)
        size = rnd.randint(512, 4096)
        half = size // 2
        with open(os.path.join(d, "f%07d" % i), "wb") as f:
            f.write(rnd.randbytes(half) + text[: size - half])

def change_small(root):
    rnd = random.Random(7)
    files = []
    for dirpath, _, fs in os.walk(os.path.join(root, "small")):
        files += [os.path.join(dirpath, f) for f in fs]
    files.sort()
    for p in rnd.sample(files, len(files) // 100):  # 1% of the files: a line appended
        with open(p, "ab") as f:
            f.write(b"changed by the bench\n")
    d = os.path.join(root, "small", "new")
    os.makedirs(d, exist_ok=True)
    for i in range(max(1, len(files) // 1000)):  # 0.1% new files
        with open(os.path.join(d, "n%05d.txt" % i), "wb") as f:
            f.write(small_file(rnd, 4096))

def change(root):
    if not os.path.exists(os.path.join(root, "app.log")):
        return change_small(root)
    rnd = random.Random(7)
    log = os.path.join(root, "app.log")
    size = os.path.getsize(log)
    with open(log, "a") as f:  # 1% growth of the log
        f.write(("2026-11-30 12:00:00.000 host1 GET /api/v1/items 200 latency_ms=%d\n" % rnd.randint(0, 99)) * (size // 100 // 60))
    db = os.path.join(root, "app.db")
    con = sqlite3.connect(db)
    n = con.execute("SELECT max(id) FROM accounts").fetchone()[0]
    pages = os.path.getsize(db) // 4096
    # ~1% of the pages: one row on each of pages/100 random pages (rows are ~230 bytes, ~17 per page).
    ids = rnd.sample(range(1, n), max(1, pages // 100))
    con.executemany("UPDATE accounts SET balance = balance + 1 WHERE id = ?", ((i,) for i in ids))
    con.commit()
    con.close()
    sysdir = os.path.join(root, "system")
    files = []
    for dirpath, _, fs in os.walk(sysdir):
        files += [os.path.join(dirpath, f) for f in fs]
    files.sort()
    for p in rnd.sample(files, min(20, len(files))):  # edit 20 files in the middle
        sz = os.path.getsize(p)
        if sz < 100:
            continue
        with open(p, "r+b") as f:
            f.seek(sz // 2)
            f.write(b"HAVEN-BENCH-CHANGE")
    with open(os.path.join(root, "random", "new.bin"), "wb") as f:
        f.write(os.urandom(1 << 20))

def changed(old, new):
    total = 0
    for dirpath, _, fs in os.walk(new):
        for f in fs:
            pn = os.path.join(dirpath, f)
            po = os.path.join(old, os.path.relpath(pn, new))
            if not os.path.exists(po):
                total += os.path.getsize(pn)
                continue
            with open(po, "rb") as a, open(pn, "rb") as b:
                while True:
                    x, y = a.read(4096), b.read(4096)
                    if not x and not y:
                        break
                    if x != y:
                        total += len(y)
    print(total)

if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        scale = int(sys.argv[sys.argv.index("--scale") + 1]) if "--scale" in sys.argv else 1000
        make(sys.argv[2], scale)
    elif cmd == "make-small":
        files = int(sys.argv[sys.argv.index("--files") + 1]) if "--files" in sys.argv else 60000
        make_small(sys.argv[2], files)
    elif cmd == "make-tree":
        make_tree(sys.argv[2], int(sys.argv[sys.argv.index("--files") + 1]))
    elif cmd == "change":
        change(sys.argv[2])
    elif cmd == "changed":
        changed(sys.argv[2], sys.argv[3])
