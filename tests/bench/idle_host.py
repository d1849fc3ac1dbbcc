#!/usr/bin/env python3
"""Cost of launchwatch on a loaded idle host (issue 11): prints figures, asserts nothing.

Loader: N idle processes (sleep) and M loopback TCP sockets (M/2 connected pairs, idle).
Then:
  1. the extension's sampler at default intervals (`launchwatch record`) for D seconds:
     CPU % of one core and peak RSS;
  2. `launchwatch query "SELECT count(*) FROM launchwatch_sockets"` (defaults, no extension
     running) against `ss -tinp` + `ps -eo pid,time` in the same run: CPU seconds and ratio;
  3. the same record run on the host without the loader ("idle host").

Usage (Linux, root for the kernel-event collector):
  python3 tests/bench/idle_host.py target/release/launchwatch [--procs 2000] [--sockets 20000] [--seconds 60]
"""

import argparse
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_cpu(cmd, env=None):
    before = child_cpu()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=env)
    return child_cpu() - before


def record_cost(binary, seconds, state, split=None):
    out = os.path.join(state, "rec.jsonl")
    p = subprocess.Popen(
        [binary, "record", "--config", "/dev/null", "--state-dir", state, "--duration", str(seconds), "--out", out],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    peak = 0
    hz = os.sysconf("SC_CLK_TCK")
    cpu = 0.0
    at_split = None
    started = time.monotonic()
    while p.poll() is None:
        # The sampling window only: what `record` does after it (writing the JSON Lines
        # export) is not something the extension does.
        if time.monotonic() - started > seconds:
            time.sleep(0.1)
            continue
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
            with open(f"/proc/{p.pid}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
                cpu = (int(rest[11]) + int(rest[12])) / hz
            if split is not None and at_split is None and time.monotonic() - started >= split:
                at_split = cpu
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
        time.sleep(0.5)
    # CPU and RSS as last read within the sampling window (read every 0.5 s), and the CPU
    # seconds used by `split` seconds in (None unless asked for).
    return cpu / seconds * 100.0, peak / 1024.0, at_split


class LoadedHost:
    """The loader, as a context manager: `procs` idle processes (sleep) and `sockets` loopback
    TCP sockets (sockets/2 connected pairs, idle), all gone on exit. Also used by thrift_rows.py."""

    def __init__(self, procs, sockets):
        self.procs, self.sockets = procs, sockets
        self.sleepers, self.holders, self.listener = [], [], None

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self):
        self.sleepers = [subprocess.Popen(["sleep", "100000"]) for _ in range(self.procs)]
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4096)
        # Socket holders of 1,000 sockets each, so no file-descriptor limit is in the way.
        per = 500
        for i in range(0, self.sockets // 2, per):
            n = min(per, self.sockets // 2 - i)
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                pairs = []
                for _ in range(n):
                    c = socket.create_connection(self.listener.getsockname())
                    s, _ = self.listener.accept()
                    pairs.append((c, s))
                os.write(w, b"k")
                signal.pause()
                os._exit(0)
            os.close(w)
            os.read(r, 1)
            os.close(r)
            self.holders.append(pid)

    def describe(self):
        return (f"{len(self.sleepers)} idle processes (+{len(self.holders)} socket holders), "
                f"{2 * (self.sockets // 2)} loopback TCP sockets")

    def __exit__(self, *exc):
        for p in self.sleepers:
            p.kill()
        for p in self.sleepers:
            p.wait()
        for pid in self.holders:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        if self.listener is not None:
            self.listener.close()
        self.sleepers, self.holders, self.listener = [], [], None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--procs", type=int, default=2000)
    ap.add_argument("--sockets", type=int, default=20000)
    ap.add_argument("--seconds", type=float, default=60)
    a = ap.parse_args()

    env = dict(os.environ, LAUNCHWATCH_CONFIG="/dev/null")
    with tempfile.TemporaryDirectory() as d:
        pct, rss, _ = record_cost(a.binary, a.seconds, os.path.join(d, "idle"))
        print(f"idle host:   extension sampler {pct:.2f} % of one core, peak RSS {rss:.1f} MiB")

        with LoadedHost(a.procs, a.sockets) as host:
            print(f"loader:      {host.describe()}")
            pct, rss, _ = record_cost(a.binary, a.seconds, os.path.join(d, "loaded"))
            print(f"loaded host: extension sampler {pct:.2f} % of one core, peak RSS {rss:.1f} MiB "
                  f"(targets: <= 1 %, <= 40 MiB)")
            q = run_cpu([a.binary, "query", "--state-dir", os.path.join(d, "q"),
                         "SELECT count(*) FROM launchwatch_sockets"], env)
            ss = run_cpu(["ss", "-tinp"]) + run_cpu(["ps", "-eo", "pid,time"])
            print(f"one query:   launchwatch {q:.3f} s CPU, ss -tinp + ps -eo pid,time {ss:.3f} s CPU, "
                  f"ratio {q / ss if ss else float('inf'):.2f}x (target <= 1.0x)")


if __name__ == "__main__":
    sys.exit(main())
