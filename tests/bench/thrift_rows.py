#!/usr/bin/env python3
"""osqueryd-style `SELECT *` of launchwatch_sockets over thrift, against an osquery-python
extension serving the same rows (issue 11): prints figures, asserts nothing.

1. The loader of idle_host.py: N idle processes and M loopback TCP sockets.
2. The real launchwatch extension, started as osqueryd's watcher starts it, against the test
   suite's osqueryd stand-in (tests/peer/osqueryd_peer.py: the official `osquery` bindings'
   ExtensionManager), with a private --state-dir. Once its sampler has seen the loaded sockets,
   `calls` times what osqueryd does for `SELECT * FROM launchwatch_sockets`: a connect-and-ping,
   then a new connection for `call("table", "launchwatch_sockets", {"action": "generate",
   "context": <osqueryd's context: every column used, no constraints>})`, the response read in
   full. The extension's sampler keeps running meanwhile, as under osqueryd.
3. osquery_python_sockets.py, an osquery-python extension serving the rows of launchwatch's
   last answer (same columns and values, its `generate` returns them ready-made), timed the
   same way in the same run.

Two figures per server, each the median of `calls`:
* served rows/s: rows / time from the ping to the last byte of the reply. This is the
  extension's speed; the client only receives bytes, then decodes them untimed.
* rows/s with the client's decode: the reply decoded as it arrives, as osqueryd does (in C++).
  The osquery-python bindings' generated code (Thrift 0.10 compiler) can only decode with the
  pure-Python TBinaryProtocol under thrift >= 0.11, which takes longer than osquery-python
  takes to serve the rows (~0.45 s for 20,000 rows of 19 columns); so this client decodes with
  thrift's C module (fastbinary), given specs in the layout it expects. Even that is a cost of
  this client (~0.1 s per 30,000 rows), the same for both servers.

Usage (Linux, as root so the sampler sees every socket's owner):
  target/peer-venv/bin/python tests/bench/thrift_rows.py target/release/launchwatch \
      [--procs 2000] [--sockets 20000] [--calls 5]
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "peer"))

from idle_host import LoadedHost  # noqa: E402
from osquery.extensions import Extension  # noqa: E402
from osquery.extensions.ttypes import ExtensionResponse, ExtensionStatus  # noqa: E402
from osqueryd_peer import FakeOsqueryd  # noqa: E402
from thrift.protocol import TBinaryProtocol, fastbinary  # noqa: E402
from thrift.Thrift import TApplicationException, TMessageType, TType  # noqa: E402
from thrift.transport import TSocket, TTransport  # noqa: E402

TABLE = "launchwatch_sockets"

# `call`'s result as fastbinary (thrift >= 0.11) wants it: a struct's type arguments are a
# two-element *list* [class, spec] (the 0.10-generated specs use a tuple, which it refuses).
_STRING_MAP = (TType.MAP, (TType.STRING, "UTF8", TType.STRING, "UTF8", False), False)
_STATUS = [ExtensionStatus, ExtensionStatus.thrift_spec]
_RESPONSE_SPEC = (
    None,
    (1, TType.STRUCT, "status", _STATUS, None),
    (2, TType.LIST, "response", _STRING_MAP, None),
)
_RESULT = [Extension.call_result, ((0, TType.STRUCT, "success", [ExtensionResponse, _RESPONSE_SPEC], None),)]


def call_fast(osqueryd, uuid, request):
    """osqueryd's callExtension: connect-and-ping, then a new connection for the call; the
    reply decoded by thrift's C module as it arrives."""
    status = osqueryd.ping(uuid)
    if status.code == 1:
        raise RuntimeError("pre-call ping failed: %r" % status)
    sock = TSocket.TSocket(unix_socket=osqueryd.extension_socket(uuid))
    sock.setTimeout(300 * 1000)
    trans = TTransport.TBufferedTransport(sock, rbuf_size=1 << 16)
    trans.open()
    try:
        Extension.Client(TBinaryProtocol.TBinaryProtocol(trans)).send_call("table", TABLE, request)
        return decode_reply(trans)
    finally:
        trans.close()


def call_served(osqueryd, uuid, request):
    """The same ping + call, but the reply is only received: the call's connection is
    half-closed after the request, so the server closes it once its reply is out (both servers
    do: launchwatch and osquery-python's TSimpleServer read the next request, see the end and
    close). Returns (seconds from the ping to the reply's last byte, the reply decoded)."""
    started = time.perf_counter()
    status = osqueryd.ping(uuid)
    if status.code == 1:
        raise RuntimeError("pre-call ping failed: %r" % status)
    out = TTransport.TMemoryBuffer()
    Extension.Client(TBinaryProtocol.TBinaryProtocol(out)).send_call("table", TABLE, request)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(300)
    try:
        conn.connect(osqueryd.extension_socket(uuid))
        conn.sendall(out.getvalue())
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        conn.close()
    elapsed = time.perf_counter() - started
    return elapsed, decode_reply(TTransport.TMemoryBuffer(b"".join(chunks)))


def decode_reply(trans):
    iprot = TBinaryProtocol.TBinaryProtocol(trans)
    _, mtype, _ = iprot.readMessageBegin()
    if mtype == TMessageType.EXCEPTION:
        e = TApplicationException()
        e.read(iprot)
        raise RuntimeError("call failed: %s" % e)
    result = Extension.call_result()
    fastbinary.decode_binary(result, iprot, _RESULT)
    if result.success is None:
        raise RuntimeError("call has no result")
    return result.success


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def select_all(osqueryd, uuid):
    return {"action": "generate", "context": osqueryd.context(uuid, TABLE)}


def measure(name, osqueryd, uuid, pid, calls):
    """Times `calls` osqueryd-style SELECT * calls each way; returns (rows of the last, figures)."""
    request = select_all(osqueryd, uuid)
    served, decoded, counts = [], [], []
    cpu_before = cpu_seconds(pid)
    for _ in range(calls):
        elapsed, answer = call_served(osqueryd, uuid, request)
        if answer.status.code != 0:
            raise RuntimeError("%s: %s" % (name, answer.status.message))
        counts.append(len(answer.response))
        served.append(len(answer.response) / elapsed)
    cpu = (cpu_seconds(pid) - cpu_before) / calls
    for _ in range(calls):
        started = time.perf_counter()
        answer = call_fast(osqueryd, uuid, request)
        decoded.append(len(answer.response) / (time.perf_counter() - started))
    figures = {"served": statistics.median(served), "decoded": statistics.median(decoded)}
    print(
        "%-15s %6d rows/call: %7.0f rows/s served (%.3f s/call, server CPU %.3f s/call), "
        "%7.0f rows/s with the client's decode"
        % (name, counts[-1], figures["served"], counts[-1] / figures["served"], cpu, figures["decoded"]),
        flush=True,
    )
    return answer.response, figures


def wait_for_sockets(osqueryd, uuid, wanted, timeout):
    """Until the extension's table holds the loaded sockets (the sampler's first full pass)."""
    deadline = time.monotonic() + timeout
    request = select_all(osqueryd, uuid)
    count = 0
    while time.monotonic() < deadline:
        count = len(call_fast(osqueryd, uuid, request).response)
        if count >= wanted:
            return count
        time.sleep(1)
    raise RuntimeError("only %d of %d sockets in %s after %.0f s" % (count, wanted, TABLE, timeout))


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--procs", type=int, default=2000)
    ap.add_argument("--sockets", type=int, default=20000)
    ap.add_argument("--calls", type=int, default=5)
    a = ap.parse_args()
    binary = os.path.abspath(a.binary)
    env = dict(os.environ, LAUNCHWATCH_CONFIG="/dev/null")

    # Short path: Unix socket names are limited to 108 bytes.
    with LoadedHost(a.procs, a.sockets) as host, tempfile.TemporaryDirectory(prefix="lw") as d:
        print("loader:         %s" % host.describe(), flush=True)

        osqueryd = FakeOsqueryd(os.path.join(d, "lw.em")).start()
        ext = subprocess.Popen(
            [binary, "--socket", osqueryd.socket_path, "--timeout", "3", "--interval", "3",
             "--config", "/dev/null", "--state-dir", os.path.join(d, "state")],
            env=env,
        )
        try:
            uuid = osqueryd.wait_registered("launchwatch", timeout=30)
            seen = wait_for_sockets(osqueryd, uuid, a.sockets, timeout=300)
            print("launchwatch:    %d rows in %s once the sampler had run" % (seen, TABLE), flush=True)
            columns = [
                {"name": r["name"], "type": r["type"]}
                for r in osqueryd.routes(uuid, TABLE)
                if r.get("id") == "column"
            ]
            rows, lw = measure("launchwatch", osqueryd, uuid, ext.pid, a.calls)
        finally:
            stop(ext)
            osqueryd.stop()

        rows_file = os.path.join(d, "rows.json")
        with open(rows_file, "w") as f:
            json.dump({"columns": columns, "rows": rows}, f)
        del rows

        osqueryd = FakeOsqueryd(os.path.join(d, "py.em")).start()
        py = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "osquery_python_sockets.py"),
             "--socket", osqueryd.socket_path, "--timeout", "3", "--interval", "3"],
            env=dict(env, BENCH_ROWS=rows_file),
        )
        try:
            uuid = osqueryd.wait_registered("osquery_python_sockets", timeout=30)
            _, baseline = measure("osquery-python", osqueryd, uuid, py.pid, a.calls)
        finally:
            stop(py)
            osqueryd.stop()

    print(
        "ratio:          launchwatch serves %.2fx the rows/s of osquery-python (target >= 3x); "
        "%.2fx counting this client's decode"
        % (lw["served"] / baseline["served"], lw["decoded"] / baseline["decoded"])
    )


if __name__ == "__main__":
    sys.exit(main())
