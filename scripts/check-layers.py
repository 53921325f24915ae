#!/usr/bin/env python3
"""Checks the module rules of docs/ARCHITECTURE.md over src/ (CMake cannot: every module sees
src/ on its include path):

  * a module includes only itself and the modules it is allowed to build on (ALLOWED);
  * library code (everything but cli/ and main.cc) never prints, reads the environment or
    changes process-wide state.

Prints one line per violation (file:line: what, and the rule) and exits 1 if there is any.
"""
import pathlib
import re
import sys

# Who may include whom: the dependency direction of docs/ARCHITECTURE.md.
ALLOWED = {
    "util": set(),
    "crypto": {"util"},
    "chunker": {"util"},
    "storage": {"util", "crypto"},
    "repo": {"util", "crypto", "chunker", "storage"},
    "backup": {"util", "crypto", "chunker", "storage", "repo"},
    "restore": {"util", "crypto", "chunker", "storage", "repo"},
    "check": {"util", "crypto", "chunker", "storage", "repo"},
    "retention": {"util", "crypto", "chunker", "storage", "repo"},
    "pg": {"util", "crypto", "chunker", "storage", "repo", "backup", "restore", "check", "retention"},
    "ops": {"util", "crypto", "chunker", "storage", "repo", "backup", "restore", "check",
            "retention", "pg"},
    # replication: copies of a repository between backends; over ops (locks), never jobs.
    "replication": {"util", "crypto", "chunker", "storage", "repo", "backup", "restore", "check",
                    "retention", "pg", "ops"},
    # The server wave: schedule and catalog build on util alone; config (haven.yaml) on
    # schedule; jobs runs operations and records them; server is the REST front end.
    "schedule": {"util"},
    "catalog": {"util"},
    "config": {"util", "schedule"},
    "jobs": {"util", "crypto", "chunker", "storage", "repo", "backup", "restore", "check",
             "retention", "pg", "ops", "replication", "schedule", "config", "catalog"},
    # monitor: status, monitors, alerts and channels, metrics, audit; over the runner's records.
    # It reaches repositories only through jobs (which owns ops), and storage for the HTTP layer
    # and WAL listings.
    "monitor": {"util", "storage", "schedule", "config", "catalog", "jobs", "replication"},
    # dr: plans, drills, failover; callable from the CLI without the server, so never jobs.
    "dr": {"util", "crypto", "chunker", "storage", "repo", "backup", "restore", "check",
           "retention", "pg", "ops", "replication", "schedule", "config", "catalog"},
    "server": {"util", "crypto", "chunker", "storage", "repo", "backup", "restore", "check",
               "retention", "pg", "ops", "replication", "schedule", "config", "catalog", "jobs",
               "monitor", "dr"},
    "cli": {"util", "crypto", "chunker", "storage", "repo", "backup", "restore", "check",
            "retention", "pg", "ops", "replication", "schedule", "config", "catalog", "jobs",
            "monitor", "dr"},
}
FRONT_ENDS = {"cli", "server"}  # may print, read the environment and set up the process

# Library code must not do these (a long-running server hosts it).
FORBIDDEN = [
    (re.compile(r"std::(cout|cerr|clog|cin)\b"), "prints or reads the terminal"),
    (re.compile(r"(?<![\w.>:])(std::)?(f?printf|puts|perror|dprintf)\s*\("), "prints"),
    (re.compile(r"(?<![\w.>])(std::)?(getenv|secure_getenv)\s*\("), "reads the environment"),
    (re.compile(r"\b(setenv|unsetenv|putenv|tzset|setrlimit|setlocale|chdir|umask)\s*\("),
     "changes process-wide state"),
    (re.compile(r"(?<![\w.>])(signal|sigaction)\s*\(\s*SIG"), "installs a signal handler"),
]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/')


def main() -> int:
    root = pathlib.Path(__file__).resolve().parent.parent / "src"
    problems = []
    for path in sorted(root.rglob("*")):
        if path.suffix not in (".h", ".cc", ".in") or not path.is_file():
            continue
        rel = path.relative_to(root)
        module = rel.parts[0] if len(rel.parts) > 1 else None
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for no, line in enumerate(text, 1):
            m = INCLUDE.match(line)
            if m and module is not None:
                dep = m.group(1)
                if dep != module and dep in ALLOWED and dep not in ALLOWED[module]:
                    problems.append(f"src/{rel}:{no}: {module} includes {dep}/: a module includes "
                                    f"only {sorted(ALLOWED[module]) or 'nothing'} (docs/ARCHITECTURE.md)")
            if module is None or module in FRONT_ENDS:
                continue
            code = line.split("//", 1)[0]
            for pattern, what in FORBIDDEN:
                if pattern.search(code):
                    problems.append(f"src/{rel}:{no}: library code {what}: only the CLI and the "
                                    f"server may ({line.strip()})")
        if module is not None and module not in ALLOWED:
            problems.append(f"src/{rel}: module {module}/ is not in scripts/check-layers.py's "
                            "ALLOWED table: add it with the modules it may include")
    for p in problems:
        print(p)
    if problems:
        print(f"check-layers: {len(problems)} violation(s)")
        return 1
    print("check-layers: every module keeps its layer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
