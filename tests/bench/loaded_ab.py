#!/usr/bin/env python3
"""Two or more launchwatch binaries on one loaded host, alternating (figures only).

The loader of idle_host.py starts once; each binary then records 60 s at default intervals,
round after round, so both meet the same host, and the first run shows the cold-cache cost
the later (warm) ones do not. Each run's CPU is also split at 3 s: the first tick (the first
full scan and write) against the rest of the minute.

Usage (Linux, root): python3 tests/bench/loaded_ab.py BIN_A BIN_B [--rounds 2] [--seconds 60]
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idle_host import LoadedHost, record_cost  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--procs", type=int, default=2000)
    ap.add_argument("--sockets", type=int, default=20000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d, LoadedHost(a.procs, a.sockets) as host:
        print(f"loader: {host.describe()}")
        for r in range(a.rounds):
            for i, b in enumerate(a.binaries):
                pct, rss, first = record_cost(b, a.seconds, os.path.join(d, f"{r}-{i}"), split=3)
                total = pct * a.seconds / 100.0
                print(
                    f"round {r + 1}: {b}: {pct:.2f} % of one core, peak RSS {rss:.1f} MiB "
                    f"(CPU s: first 3 s {first:.2f}, the rest {total - first:.2f})",
                    flush=True,
                )


if __name__ == "__main__":
    sys.exit(main())
