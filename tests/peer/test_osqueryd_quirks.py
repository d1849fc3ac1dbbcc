"""The osquery host against what osqueryd really does (issue #14): a registration that is
answered late, uuid 0, constraint bytes that are not UTF-8, numbers as SQLite renders them, a
slow manager, oversized responses, osquery's flag parsing, and the standalone host giving the
same rows as osqueryd for the same constraints.
"""

import json
import os
import re
import socket
import sqlite3
import subprocess
import time

from conftest import BIN, REPO, SLACK
from osqueryd_peer import EQUALS, NOT_EQUALS

LESS_THAN = 16


def rows_of(response):
    assert response.status.code == 0, response.status.message
    return response.response


def test_registration_answered_after_15s_is_waited_for_and_sent_once(osqueryd, spawn):
    # osqueryd registers behind running queries (SQLite attach lock); its own SDK waits 300 s.
    osqueryd.handler.register_delay = 15.0
    ext = spawn(osqueryd, timeout=3)
    uuid = osqueryd.wait_registered("launchwatch", timeout=15 + 5 * SLACK)
    assert ext.proc.poll() is None, "must still be running after a late answer"
    assert osqueryd.handler.register_calls == 1, "the sent request must not be re-sent"
    assert rows_of(osqueryd.generate(uuid, "launchwatch_status"))


def test_uuid_zero_is_handed_back_and_registration_repeated(osqueryd, spawn):
    # rand()+1 as uint16 can be 0; <socket>.0 would not be ours to serve on.
    osqueryd.handler.uuids = [0]
    ext = spawn(osqueryd)
    uuid = osqueryd.wait_registered("launchwatch", timeout=3 * SLACK)
    assert uuid != 0
    assert osqueryd.handler.deregistered == [0]
    assert osqueryd.handler.register_calls == 2
    assert 0 not in osqueryd.registered()
    assert not os.path.exists(osqueryd.extension_socket(0))
    assert rows_of(osqueryd.generate(uuid, "launchwatch_status"))
    assert ext.proc.poll() is None


def test_constraint_bytes_that_are_not_utf8_do_not_break_the_call(osqueryd, spawn):
    # CAST(X'FF' AS TEXT), or a join against a raw Linux path: osqueryd sends the bytes as is.
    ext = spawn(osqueryd)
    uuid = osqueryd.wait_registered("launchwatch")
    r = osqueryd.generate(uuid, "launchwatch_test_fault", [("mode", EQUALS, "ok"), ("constraints", NOT_EQUALS, b"/tmp/\xff\xfe")])
    row = rows_of(r)[0]
    assert "constraints:68:/tmp/\ufffd\ufffd" in json.loads(row["constraints"])
    launchd = osqueryd.generate(uuid, "launchwatch_launchd", [("path", EQUALS, b"/Library/LaunchDaemons/\xff.plist")])
    assert rows_of(launchd) == []
    assert osqueryd.ping(uuid).code == 0 and ext.proc.poll() is None


def test_integral_double_constraint_matches_the_integer_column(osqueryd, spawn, workdir):
    # `remote_port = 443.0`, or a join against a DOUBLE column, arrives as "443.0".
    config = os.path.join(workdir, "fast.toml")
    with open(config, "w") as f:
        f.write("[sampler]\nsocket_interval = 0.2\nprocess_interval = 5\n")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    try:
        client.sendall(b"x" * 1000)
        accepted.recv(4096)
        spawn(osqueryd, config=config)
        uuid = osqueryd.wait_registered("launchwatch")
        deadline = time.monotonic() + 5 * SLACK
        rows = []
        while time.monotonic() < deadline and not rows:
            rows = rows_of(osqueryd.generate(uuid, "launchwatch_sockets", [("remote_port", EQUALS, "%d.0" % port)]))
            time.sleep(0.2)
        assert rows, "no row for remote_port = %d.0" % port
        assert {r["remote_port"] for r in rows} == {str(port)}
        assert int(rows[0]["pid"]) == os.getpid()
        # A fraction can equal no port: nothing, and no error.
        assert rows_of(osqueryd.generate(uuid, "launchwatch_sockets", [("remote_port", EQUALS, "%d.5" % port)])) == []
    finally:
        for s in (client, accepted, server):
            s.close()


def test_a_slow_extensions_answer_is_not_a_dead_manager(osqueryd, spawn):
    osqueryd.handler.extensions_delay = 3.0
    ext = spawn(osqueryd, interval=1)
    uuid = osqueryd.wait_registered("launchwatch")
    deadline = time.monotonic() + 10 * SLACK
    while osqueryd.handler.extensions_answered < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ext.proc.poll() is None, "exited on a slow manager: %s" % ext.stderr()
    assert osqueryd.handler.extensions_answered >= 2
    assert uuid in osqueryd.registered()


def test_a_response_over_osqueryds_limit_fails_with_a_clear_message(osqueryd, spawn):
    ext = spawn(osqueryd)
    uuid = osqueryd.wait_registered("launchwatch")
    r = osqueryd.generate(uuid, "launchwatch_test_fault", [("mode", EQUALS, "large"), ("large_mib", EQUALS, 101)])
    assert r.status.code == 1
    assert "100 MiB" in r.status.message and "WHERE" in r.status.message, r.status.message
    small = rows_of(osqueryd.generate(uuid, "launchwatch_test_fault", [("mode", EQUALS, "large"), ("large_mib", EQUALS, 2)]))
    assert len(small) == 2 and len(small[0]["payload"]) == 1 << 20
    assert ext.proc.poll() is None


def test_timeout_and_interval_are_read_as_osquery_reads_them(osqueryd, spawn):
    ext = spawn(osqueryd, timeout="3s", interval="1s")
    uuid = osqueryd.wait_registered("launchwatch", timeout=3 * SLACK)
    assert rows_of(osqueryd.generate(uuid, "launchwatch_status"))
    assert ext.proc.poll() is None


# --- one query, two hosts -------------------------------------------------------------------

FIXTURE_ROOT = os.path.join(REPO, "tests", "fixtures", "launchd", "tree")
NOW = "1709163000"


def stol_base0(text):
    """std::stoll(text, &pos, 0) without the end check, as osquery's tryTo uses it."""
    m = re.match(r"[ \t\n\r\v\f]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", text)
    if not m:
        return None
    digits = m.group(2)
    value = int(digits, 16) if digits[:2] in ("0x", "0X") else int(digits, 8) if digits.startswith("0") else int(digits)
    value = -value if m.group(1) == "-" else value
    return value if -(2**63) <= value < 2**63 else None


def osquery_cell(affinity, text):
    """osqueryd's DynamicTableRow::get_column: a wire string parsed by its declared type."""
    if text is None:
        return None
    if affinity in ("TEXT", "BLOB"):
        return text
    if text == "":
        return None
    if affinity == "INTEGER":
        v = stol_base0(text)
        return None if v is None else (v + 2**31) % 2**32 - 2**31  # sqlite3_result_int
    if affinity in ("BIGINT", "UNSIGNED BIGINT"):
        return stol_base0(text)
    if affinity == "DOUBLE":
        m = re.fullmatch(r"[ \t\n\r\v\f]*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text)
        return float(text) if m else None
    return None


def osqueryd_rows(osqueryd, uuid, table, constraints, sql):
    """What osqueryd answers: generate with the constraints its xBestIndex pushes, cells coerced
    by declared type, then SQLite evaluates the whole statement (it re-checks every constraint)."""
    columns = [r for r in osqueryd.routes(uuid, table) if r["id"] == "column"]
    rows = rows_of(osqueryd.generate(uuid, table, constraints))
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE %s (%s)" % (table, ", ".join('"%s" %s' % (c["name"], c["type"]) for c in columns)))
    for row in rows:
        db.execute(
            "INSERT INTO %s VALUES (%s)" % (table, ",".join("?" * len(columns))),
            [osquery_cell(c["type"], row.get(c["name"])) for c in columns],
        )
    cur = db.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def standalone_rows(workdir, sql):
    env = dict(os.environ, LAUNCHWATCH_TEST_TABLES="1", TZ="UTC")
    out = subprocess.run(
        [BIN, "query", "--json", "--no-sample", "--root", FIXTURE_ROOT, "--now", NOW,
         "--state-dir", os.path.join(workdir, "query-state"), sql],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def canonical(rows):
    """Both hosts' rows as comparable strings: NULL as "" (osqueryi's JSON), numbers by value."""

    def cell(v):
        if v is None or v == "":
            return ""
        try:
            return "%.9g" % float(v)
        except (TypeError, ValueError):
            return str(v)

    return sorted(tuple(sorted((k, cell(v)) for k, v in r.items())) for r in rows)


# (SQL, table, the constraints osqueryd's xBestIndex/xFilter would push for it). Each case
# hits one rule of virtual_table.cpp / dynamic_table_row.cpp that the standalone host follows.
SAME_ROWS = [
    # TEXT equality pushed; no < > on TEXT; a DEFAULT column counts as INDEX.
    ("SELECT constraints FROM launchwatch_test_fault WHERE mode = 'ok' AND mode >= 'a' AND sleep_ms < 5 AND sleep_ms != 3",
     "launchwatch_test_fault", [("mode", EQUALS, "ok"), ("sleep_ms", LESS_THAN, "5"), ("sleep_ms", NOT_EQUALS, "3")]),
    # An empty string never reaches the extension.
    ("SELECT constraints FROM launchwatch_test_fault WHERE mode = 'ok' AND mode != ''",
     "launchwatch_test_fault", [("mode", EQUALS, "ok")]),
    # A HIDDEN-only column is never pushed; cells coerced by declared type (32-bit INTEGER,
    # a number in a TEXT column is text, base-0 "010" is 8, "2.5 " is no DOUBLE).
    ("SELECT constraints, int32, number_text, double_text, octal_text FROM launchwatch_test_fault WHERE mode = 'typed' AND octal_text != 9",
     "launchwatch_test_fault", [("mode", EQUALS, "typed")]),
    ("SELECT mode FROM launchwatch_test_fault WHERE mode = 'typed' AND number_text = 5 AND int32 < 0",
     "launchwatch_test_fault", [("mode", EQUALS, "typed"), ("number_text", EQUALS, "5"), ("int32", LESS_THAN, "0")]),
    # A REAL value as sqlite3_value_text renders it: "7.0", coerced to 7 by the table.
    ("SELECT mode, sleep_ms, constraints FROM launchwatch_test_fault WHERE mode = 'ok' AND sleep_ms = 7.0",
     "launchwatch_test_fault", [("mode", EQUALS, "ok"), ("sleep_ms", EQUALS, "7.0")]),
    # A real table over real plists.
    ("SELECT label, path, period_seconds, program_arguments, disabled FROM launchwatch_launchd WHERE label = 'com.example.interval'",
     "launchwatch_launchd", [("label", EQUALS, "com.example.interval")]),
    ("SELECT label, period_seconds FROM launchwatch_launchd WHERE period_seconds = 3600.0 AND label > 'com'",
     "launchwatch_launchd", [("period_seconds", EQUALS, "3600.0")]),
    ("SELECT label, start_interval, next_run FROM launchwatch_launchd WHERE start_interval >= 300 AND path != ''",
     "launchwatch_launchd", [("start_interval", 32, "300")]),
]


def test_the_standalone_host_gives_osqueryds_rows_for_the_same_constraints(osqueryd, spawn, workdir):
    spawn(osqueryd, extra_args=["--root", FIXTURE_ROOT, "--now", NOW], env={"TZ": "UTC"})
    uuid = osqueryd.wait_registered("launchwatch")
    for sql, table, constraints in SAME_ROWS:
        want = osqueryd_rows(osqueryd, uuid, table, constraints, sql)
        got = standalone_rows(workdir, sql)
        assert want, "case proves nothing without rows: %s" % sql
        assert canonical(got) == canonical(want), "%s\nosqueryd:   %r\nstandalone: %r" % (sql, want, got)
