"""The real launchwatch binary against an osqueryd stand-in, over its Unix socket.

Each test proves one behaviour of issue #2's osquery host, failure paths included.
"""

import glob
import json
import os
import signal
import stat
import threading
import time

import pytest

from conftest import SLACK, workspace_version
from osqueryd_peer import EQUALS, FakeOsqueryd, LIMIT, NOT_EQUALS, OFFSET


def rows_of(response):
    assert response.status.code == 0, response.status.message
    return response.response


def leftover_sockets(osqueryd):
    return glob.glob(osqueryd.socket_path + ".*")


def test_registers_with_its_version_and_every_column(osqueryd, spawn):
    ext = spawn(osqueryd)
    uuid = osqueryd.wait_registered("launchwatch")
    info, registry = osqueryd.registered()[uuid]
    assert info.version == workspace_version()
    assert info.version != "1.0"
    assert info.sdk_version and info.sdk_version >= "1.7.7"
    status_routes = registry["table"]["launchwatch_status"]
    names = [r["name"] for r in status_routes if r["id"] == "column"]
    assert names[:8] == [
        "version", "uptime_seconds", "samples", "sample_cost_ms",
        "observations_stored", "store_bytes", "capture_enabled", "errors",
    ]
    types = {r["name"]: r["type"] for r in status_routes}
    assert types["store_bytes"] == "BIGINT" and types["sample_cost_ms"] == "DOUBLE"
    # The live `columns` action agrees with the broadcast.
    live = rows_of(osqueryd.call(uuid, "table", "launchwatch_status", {"action": "columns"}))
    assert live == status_routes
    ping = osqueryd.ping(uuid)
    assert (ping.code, ping.message, ping.uuid) == (0, "pong", uuid)
    assert ext.proc.poll() is None


def test_listening_socket_is_private(osqueryd, spawn):
    spawn(osqueryd)
    uuid = osqueryd.wait_registered("launchwatch")
    mode = stat.S_IMODE(os.stat(osqueryd.extension_socket(uuid)).st_mode)
    assert mode == 0o600, oct(mode)


def test_waits_for_the_manager_socket_then_registers(workdir, spawn):
    peer = FakeOsqueryd(os.path.join(workdir, "late.em"))
    ext = spawn(peer, timeout=10)
    time.sleep(1.0)
    assert ext.proc.poll() is None, "must keep waiting while the socket is absent"
    peer.start()
    try:
        uuid = peer.wait_registered("launchwatch", timeout=3 * SLACK)
        assert rows_of(peer.generate(uuid, "launchwatch_status"))
    finally:
        peer.stop()


def test_gives_up_when_the_manager_never_appears(workdir, spawn):
    peer = FakeOsqueryd(os.path.join(workdir, "never.em"))
    ext = spawn(peer, timeout=1)
    code = ext.wait(1 + 2 * SLACK)
    assert code is not None and code != 0
    assert "did not appear" in ext.stderr()


def refused(osqueryd, spawn, needle):
    ext = spawn(osqueryd)
    started = time.monotonic()
    code = ext.wait(2 * SLACK)
    elapsed = time.monotonic() - started
    assert code is not None, "refused extension must exit"
    assert code != 0
    assert elapsed <= 2 * SLACK, elapsed
    err = ext.stderr()
    assert "refused registration" in err and needle in err, err
    assert leftover_sockets(osqueryd) == []


def test_refused_for_a_duplicate_name(osqueryd, spawn):
    osqueryd.handler.registerExtension(
        FakeInfo("launchwatch"), {"table": {"other_table": [{"id": "column", "name": "a", "type": "TEXT", "op": "0"}]}}
    )
    refused(osqueryd, spawn, "Duplicate extension registered")


def test_refused_for_a_table_name_clash(workdir, spawn):
    peer = FakeOsqueryd(os.path.join(workdir, "clash.em"), core_tables=("launchwatch_status",)).start()
    try:
        refused(peer, spawn, "conflicts with another item")
    finally:
        peer.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_deregisters_removes_socket_and_exits_zero(osqueryd, spawn, sig):
    ext = spawn(osqueryd)
    uuid = osqueryd.wait_registered("launchwatch")
    started = time.monotonic()
    ext.proc.send_signal(sig)
    code = ext.wait(1 * SLACK)
    assert code == 0, ext.stderr()
    assert time.monotonic() - started <= 1 * SLACK
    assert uuid not in osqueryd.registered(), "must deregister"
    assert leftover_sockets(osqueryd) == []


def test_shutdown_rpc_deregisters_and_exits_zero(osqueryd, spawn):
    ext = spawn(osqueryd)
    uuid = osqueryd.wait_registered("launchwatch")
    started = time.monotonic()
    osqueryd.shutdown(uuid)
    code = ext.wait(1 * SLACK)
    assert code == 0, ext.stderr()
    assert time.monotonic() - started <= 1 * SLACK
    assert uuid not in osqueryd.registered()
    assert leftover_sockets(osqueryd) == []


def test_exits_when_the_manager_is_gone(osqueryd, spawn):
    interval = 1
    ext = spawn(osqueryd, interval=interval)
    osqueryd.wait_registered("launchwatch")
    started = time.monotonic()
    osqueryd.stop()
    code = ext.wait(2 * interval * SLACK)
    assert code is not None, "must exit within 2 x --interval"
    assert time.monotonic() - started <= 2 * interval * SLACK
    assert leftover_sockets(osqueryd) == []


def test_exits_when_osqueryd_drops_it(osqueryd, spawn):
    ext = spawn(osqueryd, interval=1)
    uuid = osqueryd.wait_registered("launchwatch")
    osqueryd.handler.deregisterExtension(uuid)
    code = ext.wait(2 * SLACK)
    assert code is not None and code != 0
    assert "no longer lists" in ext.stderr()


def test_table_error_reaches_osqueryd_as_status_message(osqueryd, spawn):
    spawn(osqueryd)
    uuid = osqueryd.wait_registered("launchwatch")
    r = osqueryd.generate(uuid, "launchwatch_test_fault", [("mode", EQUALS, "error")])
    assert r.status.code == 1
    assert "injected failure" in r.status.message
    # Garbage context JSON is an error with a clear reason, not a crash or a silent full scan.
    r = osqueryd.generate(uuid, "launchwatch_status", raw_context="{not json")
    assert r.status.code == 1 and "invalid query context" in r.status.message
    r = osqueryd.generate(uuid, "launchwatch_status", raw_context='{"constraints":{"a":1}}')
    assert r.status.code == 1 and "not an array" in r.status.message
    # Unknown ops are ignored, never an error.
    ctx = json.dumps({"constraints": [{"name": "version", "list": [{"op": 150, "expr": "x"}], "affinity": "TEXT"}]})
    assert len(rows_of(osqueryd.generate(uuid, "launchwatch_status", raw_context=ctx))) == 1


def test_a_panic_fails_only_its_own_call(osqueryd, spawn):
    ext = spawn(osqueryd)
    uuid = osqueryd.wait_registered("launchwatch")
    r = osqueryd.generate(uuid, "launchwatch_test_fault", [("mode", EQUALS, "panic")])
    assert r.status.code == 1 and "injected panic" in r.status.message
    assert rows_of(osqueryd.generate(uuid, "launchwatch_test_fault", [("mode", EQUALS, "ok")]))
    assert osqueryd.ping(uuid).code == 0
    status = rows_of(osqueryd.generate(uuid, "launchwatch_status"))[0]
    assert int(status["errors"]) >= 1, "the failed call is counted"
    assert ext.proc.poll() is None


def test_many_slow_calls_do_not_starve_ping(osqueryd, spawn):
    spawn(osqueryd)
    uuid = osqueryd.wait_registered("launchwatch")
    slow_ms, n = 3000, 12
    results = []

    def slow():
        results.append(osqueryd.generate(uuid, "launchwatch_test_fault", [("mode", EQUALS, "sleep"), ("sleep_ms", EQUALS, slow_ms)]))

    threads = [threading.Thread(target=slow) for _ in range(n)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # all slow calls are in flight now
    started = time.monotonic()
    assert osqueryd.ping(uuid, timeout_s=10).code == 0
    ping_s = time.monotonic() - started
    # A fresh call also goes through while the slow ones hold their connections.
    assert rows_of(osqueryd.generate(uuid, "launchwatch_status"))
    for t in threads:
        t.join(30)
    assert ping_s < 1.0 * SLACK, "ping waited %.2fs behind slow calls" % ping_s
    assert len(results) == n and all(r.status.code == 0 for r in results)


def test_constraints_are_pushed_down_as_osqueryd_sends_them(osqueryd, spawn):
    spawn(osqueryd)
    uuid = osqueryd.wait_registered("launchwatch")
    routes = {r["name"]: r for r in osqueryd.routes(uuid, "launchwatch_test_fault")}
    assert int(routes["mode"]["op"]) & 1, "mode is declared INDEX"
    rows = rows_of(
        osqueryd.generate(
            uuid,
            "launchwatch_test_fault",
            [("mode", EQUALS, "ok"), ("sleep_ms", NOT_EQUALS, 7), ("mode", OFFSET, 2), ("mode", LIMIT, 1)],
            cols_used=["mode", "constraints"],
        )
    )
    seen = json.loads(rows[0]["constraints"])
    assert "mode:2:ok" in seen and "sleep_ms:68:7" in seen
    assert "limit:1" in seen and "offset:2" in seen
    assert not any(s.startswith("mode:73") or s.startswith("mode:74") for s in seen), "LIMIT/OFFSET are not column filters"


def test_null_is_an_omitted_key(osqueryd, spawn):
    spawn(osqueryd)
    uuid = osqueryd.wait_registered("launchwatch")
    row = rows_of(osqueryd.generate(uuid, "launchwatch_test_fault", [("mode", EQUALS, "null")]))[0]
    assert "sleep_ms" not in row and row["mode"] == "null"


def test_rowids_are_integers_derived_from_content(osqueryd, spawn):
    # osqueryd uses a `rowid` key as the SQLite rowid (it must be an integer). Derived from the
    # row, it is the same in every scan and differs between rows, so SQLite's per-OR-term scans
    # merge correctly.
    spawn(osqueryd)
    uuid = osqueryd.wait_registered("launchwatch")
    ok = rows_of(osqueryd.generate(uuid, "launchwatch_test_fault", [("mode", EQUALS, "ok")]))[0]
    again = rows_of(osqueryd.generate(uuid, "launchwatch_test_fault", [("mode", EQUALS, "ok")]))[0]
    null = rows_of(osqueryd.generate(uuid, "launchwatch_test_fault", [("mode", EQUALS, "null")]))[0]
    assert int(ok["rowid"]) == int(again["rowid"])
    assert int(ok["rowid"]) != int(null["rowid"])


def test_unknown_registry_table_and_writes(osqueryd, spawn):
    spawn(osqueryd)
    uuid = osqueryd.wait_registered("launchwatch")
    r = osqueryd.call(uuid, "logger", "x", {"action": "features"})
    assert r.status.code == 1 and "registry" in r.status.message
    r = osqueryd.call(uuid, "table", "nope", {"action": "generate"})
    assert r.status.code == 1 and "nope" in r.status.message
    r = osqueryd.call(uuid, "table", "launchwatch_status", {"action": "insert", "json_value_array": "[]"})
    assert r.response == [{"status": "readonly"}]
    # A generate without any context (osquery-internal selectAllFrom) is a full scan.
    assert len(rows_of(osqueryd.call(uuid, "table", "launchwatch_status", {"action": "generate"}))) == 1


def write_config(workdir, text):
    path = os.path.join(workdir, "launchwatch.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def test_status_samples_grow_over_time(osqueryd, spawn, workdir):
    config = write_config(workdir, "[sampler]\nprocess_interval = 0.3\n")
    spawn(osqueryd, config=config)
    uuid = osqueryd.wait_registered("launchwatch")
    first = rows_of(osqueryd.generate(uuid, "launchwatch_status"))[0]
    time.sleep(1.5)
    second = rows_of(osqueryd.generate(uuid, "launchwatch_status"))[0]
    # A slow machine's ticks may take longer than the interval: wait for two, within reason.
    deadline = time.time() + 10 * SLACK
    while int(second["samples"]) < int(first["samples"]) + 2 and time.time() < deadline:
        time.sleep(0.3)
        second = rows_of(osqueryd.generate(uuid, "launchwatch_status"))[0]
    assert int(second["samples"]) >= int(first["samples"]) + 2, (first, second)
    assert int(second["observations_stored"]) > int(first["observations_stored"])
    assert float(second["sample_cost_ms"]) > 0
    assert int(second["uptime_seconds"]) >= 1


def test_status_store_bytes_is_the_size_on_disk_with_wal(osqueryd, spawn, workdir):
    config = write_config(workdir, "[sampler]\nprocess_interval = 2\n")
    state = os.path.join(workdir, "state")
    spawn(osqueryd, config=config, state_dir=state)
    uuid = osqueryd.wait_registered("launchwatch")
    time.sleep(0.5)
    db = os.path.join(state, "launchwatch.db")

    def on_disk():
        return sum(os.path.getsize(db + s) for s in ("", "-wal", "-shm") if os.path.exists(db + s))

    # The sampler may write between our stat and the call: accept a reading bracketed by two
    # identical answers.
    for _ in range(10):
        before = int(rows_of(osqueryd.generate(uuid, "launchwatch_status"))[0]["store_bytes"])
        disk = on_disk()
        after = int(rows_of(osqueryd.generate(uuid, "launchwatch_status"))[0]["store_bytes"])
        if before == after:
            assert before == disk, (before, disk)
            assert os.path.exists(db + "-wal"), "the store runs in WAL mode"
            row = rows_of(osqueryd.generate(uuid, "launchwatch_status"))[0]
            assert row["store_path"] == db
            return
    raise AssertionError("store size never stable across two calls")


class FakeInfo:
    def __init__(self, name):
        self.name = name
        self.version = "9.9"
        self.sdk_version = "5.0.0"
        self.min_sdk_version = "1.7.7"


def run_query(state, sql, *extra):
    import subprocess
    from conftest import BIN

    out = subprocess.run([BIN, "query", "--json", "--state-dir", state, *extra, sql], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_query_reads_a_running_extensions_history(osqueryd, spawn, workdir):
    config = write_config(workdir, "[sampler]\nprocess_interval = 0.3\n")
    state = os.path.join(workdir, "state")
    spawn(osqueryd, config=config, state_dir=state)
    uuid = osqueryd.wait_registered("launchwatch")
    time.sleep(1.0)
    live = int(rows_of(osqueryd.generate(uuid, "launchwatch_status"))[0]["samples"])
    row = run_query(state, "SELECT samples, store_path FROM launchwatch_status")[0]
    # The extension's ticks plus the query's own two fresh samples.
    assert int(row["samples"]) >= live + 2, (live, row)
    # It names the history it read (it works on an in-memory copy of it).
    assert row["store_path"] == os.path.join(state, "launchwatch.db"), row


def test_store_survives_kill_9_at_any_moment(osqueryd, spawn, workdir):
    import random
    import sqlite3

    config = write_config(workdir, "[sampler]\nprocess_interval = 0.05\n")
    state = os.path.join(workdir, "state")
    db_path = os.path.join(state, "launchwatch.db")

    def stored_samples():
        if not os.path.exists(db_path):
            return 0
        try:
            db = sqlite3.connect(db_path, timeout=5)
            try:
                row = db.execute("SELECT value FROM meta WHERE key = 'samples'").fetchone()
            finally:
                db.close()
        except sqlite3.OperationalError:
            return 0  # store not created yet, or locked mid-migration
        return int(row[0]) if row else 0

    rng = random.Random(7)
    before = 0
    for _ in range(5):
        ext = spawn(osqueryd, config=config, state_dir=state)
        osqueryd.wait_registered("launchwatch")
        # Wait for this run's first committed sample (a loaded machine takes longer than a
        # fixed delay), then kill at an arbitrary moment of the 50 ms sampling cycle.
        deadline = time.time() + 30 * SLACK
        while stored_samples() <= before and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.2))
        ext.kill()  # SIGKILL mid-sampling: no chance to clean up
        uuid = osqueryd.uuid_of("launchwatch")
        if uuid is not None:
            osqueryd.handler.deregisterExtension(uuid)  # as osqueryd's watcher would
        after = stored_samples()
        assert after > before, "no sample was committed before the kill"
        before = after
    db = sqlite3.connect(db_path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    samples = db.execute("SELECT value FROM meta WHERE key = 'samples'").fetchone()[0]
    db.close()
    assert samples >= 5, samples
    row = run_query(state, "SELECT samples FROM launchwatch_status")[0]
    assert int(row["samples"]) >= samples


def test_bad_config_and_state_dir_degrade_instead_of_crash_looping(osqueryd, spawn, workdir):
    # osqueryd restarts an exiting extension forever; launchwatch registers anyway and says why.
    config = write_config(workdir, "[sampler]\nprocess_intreval = 1\n")
    not_a_dir = os.path.join(workdir, "state-is-a-file")
    with open(not_a_dir, "w") as f:
        f.write("x")
    ext = spawn(osqueryd, config=config, state_dir=not_a_dir)
    uuid = osqueryd.wait_registered("launchwatch")
    row = rows_of(osqueryd.generate(uuid, "launchwatch_status"))[0]
    assert "history not persisted" in row["last_error"], row
    assert int(row["errors"]) >= 2, row
    assert "store_path" not in row, "in-memory: NULL store path"
    assert ext.proc.poll() is None


def require_root():
    # CI runs as root: there a skip would hide the test, so it fails instead.
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("needs root, and CI=true: refusing to skip")
        pytest.skip("needs root")


def test_a_root_extension_ignores_a_world_writable_config(osqueryd, spawn, workdir):
    require_root()
    config = write_config(workdir, '[allowlist]\npaths = ["/Users/Shared/*"]\n')
    os.chmod(config, 0o666)
    ext = spawn(osqueryd, config=config)
    uuid = osqueryd.wait_registered("launchwatch")
    row = rows_of(osqueryd.generate(uuid, "launchwatch_status"))[0]
    assert row["config_path"] == config
    assert row["config_rejected"] == "1"
    assert row["allowlist_entries"] == "0"
    assert "config_sha256" not in row, "NULL is an omitted key over thrift"
    assert "config ignored" in row["last_error"] and "writable by others" in row["last_error"], row
    # Made safe, the next start uses it.
    ext.kill()
    os.chmod(config, 0o644)
    peer = FakeOsqueryd(os.path.join(workdir, "second.em")).start()
    try:
        spawn(peer, config=config)
        uuid = peer.wait_registered("launchwatch")
        row = rows_of(peer.generate(uuid, "launchwatch_status"))[0]
        assert (row["config_rejected"], row["allowlist_entries"]) == ("0", "1"), row
        assert len(row["config_sha256"]) == 64
    finally:
        peer.stop()


def test_a_root_extension_refuses_a_tampered_state_directory(osqueryd, spawn, workdir):
    require_root()
    state = os.path.join(workdir, "state")
    os.mkdir(state)
    planted = os.path.join(state, "launchwatch.db")
    with open(planted, "w") as f:
        f.write("not history")
    os.chown(planted, 65534, 65534)
    spawn(osqueryd, state_dir=state)
    uuid = osqueryd.wait_registered("launchwatch")
    row = rows_of(osqueryd.generate(uuid, "launchwatch_status"))[0]
    assert "refused" in row["last_error"] and "uid 65534" in row["last_error"], row
    assert row["store_path"] == planted, "a fresh store in the same place"
    aside = [n for n in os.listdir(workdir) if n.startswith("state.rejected-")]
    assert len(aside) == 1, os.listdir(workdir)
    assert os.stat(os.path.join(workdir, aside[0], "launchwatch.db")).st_uid == 65534
    assert os.stat(state).st_mode & 0o777 == 0o700
    assert os.stat(planted).st_uid == 0
