"""An osqueryd stand-in for driving the real launchwatch binary over its Unix socket.

It uses the official `osquery` PyPI bindings' generated thrift code with the pure-Python
TBinaryProtocol (the accelerated protocol cannot decode the 0.10-era
specs under thrift >= 0.11). It behaves as osqueryd does where the tests depend on it:

* the ExtensionManager is a threaded server (one thread per connection), not osquery-python's
  single-threaded TSimpleServer;
* registration is refused for a duplicate extension name ("Duplicate extension registered")
  and for a table name that clashes with a core or another extension's table;
* uuids are random in 1..65535;
* every call to the extension opens a new connection, preceded by a separate connect-and-ping;
* `generate` contexts are osqueryd-shaped: one constraint entry per column (sorted by name,
  with its affinity), `op` as a JSON number, `colsUsed` and `colsUsedBitset`; a constraint value
  may be `bytes`, sent as is (osqueryd forwards `sqlite3_value_text`, never checked as UTF-8).

Knobs for a slow or odd osqueryd: `register_delay` (registerExtension answers late, as when it
waits behind running queries), `uuids` (uuids to hand out first, e.g. 0), `extensions_delay`.
"""

import json
import os
import random
import socket
import threading
import time

from osquery.extensions import Extension, ExtensionManager
from osquery.extensions.ttypes import ExtensionResponse, ExtensionStatus, InternalExtensionInfo
from thrift.protocol import TBinaryProtocol
from thrift.transport import TSocket, TTransport

# Ops as osqueryd sends them (tables.h for 1-67, SQLite's raw codes 68-74).
EQUALS, GREATER_THAN, NOT_EQUALS, LIMIT, OFFSET = 2, 4, 68, 73, 74


class ManagerHandler(ExtensionManager.Iface):
    def __init__(self, core_tables):
        self.lock = threading.Lock()
        self.core_tables = set(core_tables)
        self.extensions_by_uuid = {}  # uuid -> (InternalExtensionInfo, registry)
        self.register_calls = 0
        self.register_delay = 0.0
        self.uuids = []  # handed out first, in order
        self.deregistered = []
        self.extensions_delay = 0.0
        self.extensions_answered = 0

    def ping(self):
        return ExtensionStatus(code=0, message="pong", uuid=0)

    def call(self, registry, item, request):
        return ExtensionResponse(status=ExtensionStatus(code=1, message="not served by this peer"), response=[])

    def shutdown(self):
        pass

    def extensions(self):
        time.sleep(self.extensions_delay)
        with self.lock:
            self.extensions_answered += 1
            return {u: info for u, (info, _) in self.extensions_by_uuid.items()}

    def options(self):
        return {}

    def registerExtension(self, info, registry):
        with self.lock:
            self.register_calls += 1
        time.sleep(self.register_delay)
        with self.lock:
            if any(i.name == info.name for i, _ in self.extensions_by_uuid.values()):
                return ExtensionStatus(code=1, message="Duplicate extension registered", uuid=0)
            taken = set(self.core_tables)
            for _, reg in self.extensions_by_uuid.values():
                taken.update((reg or {}).get("table", {}).keys())
            for name, routes in (registry or {}).get("table", {}).items():
                if name in taken:
                    return ExtensionStatus(
                        code=1, message="Registry item %s conflicts with another item of the same name." % name, uuid=0
                    )
                if not routes:
                    return ExtensionStatus(code=1, message="Invalid route info", uuid=0)
            if self.uuids:
                uuid = self.uuids.pop(0)
            else:
                uuid = random.randint(1, 65535)
                while uuid in self.extensions_by_uuid:
                    uuid = random.randint(1, 65535)
            self.extensions_by_uuid[uuid] = (info, registry)
            return ExtensionStatus(code=0, message="OK", uuid=uuid)

    def deregisterExtension(self, uuid):
        with self.lock:
            if uuid not in self.extensions_by_uuid:
                return ExtensionStatus(code=1, message="No extension UUID found", uuid=0)
            del self.extensions_by_uuid[uuid]
            self.deregistered.append(uuid)
            return ExtensionStatus(code=0, message="OK", uuid=0)

    def query(self, sql):
        return ExtensionResponse(status=ExtensionStatus(code=1, message="not supported"), response=[])

    def getQueryColumns(self, sql):
        return self.query(sql)


class RawBytesProtocol(TBinaryProtocol.TBinaryProtocol):
    """Writes a `bytes` string as is: the generated code only ever passes `str`."""

    def writeString(self, str_val):
        self.writeBinary(str_val if isinstance(str_val, bytes) else str_val.encode("utf-8"))


class FakeOsqueryd:
    """The extension manager socket plus osqueryd's client behaviour towards extensions."""

    def __init__(self, socket_path, core_tables=("processes", "launchd", "osquery_info")):
        self.socket_path = socket_path
        self.handler = ManagerHandler(core_tables)
        self.processor = ExtensionManager.Processor(self.handler)
        self.server = None
        self.threads = []

    # --- the manager server -------------------------------------------------------------
    def start(self):
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.socket_path)
        self.server.listen(64)
        t = threading.Thread(target=self._accept_loop, args=(self.server,), daemon=True)
        t.start()
        return self

    def _accept_loop(self, server):
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return  # closed by stop()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        sock = TSocket.TSocket()
        sock.handle = conn
        trans = TTransport.TBufferedTransport(sock)
        proto = TBinaryProtocol.TBinaryProtocol(trans)
        try:
            while True:
                self.processor.process(proto, proto)
        except (TTransport.TTransportException, EOFError, OSError, ConnectionError):
            pass
        finally:
            conn.close()

    def stop(self):
        """The manager goes away: no more connections, socket file removed."""
        if self.server is not None:
            self.server.close()
            self.server = None
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)

    # --- what osqueryd knows -------------------------------------------------------------
    def registered(self):
        with self.handler.lock:
            return dict(self.handler.extensions_by_uuid)

    def uuid_of(self, name):
        for uuid, (info, _) in self.registered().items():
            if info.name == name:
                return uuid
        return None

    def wait_registered(self, name, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            uuid = self.uuid_of(name)
            if uuid is not None and os.path.exists(self.extension_socket(uuid)):
                return uuid
            time.sleep(0.02)
        raise AssertionError("%s did not register within %.1fs" % (name, timeout))

    def routes(self, uuid, table):
        info, registry = self.registered()[uuid]
        return registry["table"][table]

    def extension_socket(self, uuid):
        return "%s.%d" % (self.socket_path, uuid)

    # --- osqueryd as a client of the extension --------------------------------------------
    def _client(self, uuid, timeout_s):
        sock = TSocket.TSocket(unix_socket=self.extension_socket(uuid))
        sock.setTimeout(timeout_s * 1000)
        trans = TTransport.TBufferedTransport(sock)
        proto = RawBytesProtocol(trans)
        trans.open()
        return Extension.Client(proto), trans

    def ping(self, uuid, timeout_s=10):
        client, trans = self._client(uuid, timeout_s)
        try:
            return client.ping()
        finally:
            trans.close()

    def call(self, uuid, registry, item, request, timeout_s=300):
        """As osqueryd's callExtension: connect-and-ping (10 s), then a new connection for the call."""
        status = self.ping(uuid, timeout_s=10)
        if status.code == 1:
            raise AssertionError("pre-call ping failed: %r" % status)
        client, trans = self._client(uuid, timeout_s)
        try:
            return client.call(registry, item, request)
        finally:
            trans.close()

    def shutdown(self, uuid):
        client, trans = self._client(uuid, 10)
        try:
            client.shutdown()
        finally:
            trans.close()

    def context(self, uuid, table, constraints=(), cols_used=None):
        """osqueryd's context JSON. `constraints`: (column, op, expr) triples."""
        columns = [r for r in self.routes(uuid, table) if r.get("id") == "column"]
        by_name = {r["name"]: r for r in columns}
        lists = {name: [] for name in by_name}
        raw = {}
        for col, op, expr in constraints:
            if isinstance(expr, bytes):
                marker = "@raw%d@" % len(raw)
                raw[marker] = expr
                expr = marker
            lists[col].append({"op": op, "expr": str(expr)})
        entries = [
            {"name": name, "list": lists[name], "affinity": by_name[name]["type"]} for name in sorted(by_name)
        ]
        used = list(by_name) if cols_used is None else list(cols_used)
        bitset = 0
        for i, r in enumerate(columns):
            if r["name"] in used:
                bitset |= 1 << min(i, 63)
        text = json.dumps({"constraints": entries, "colsUsed": used, "colsUsedBitset": bitset})
        if not raw:
            return text
        # rapidjson copies the value's bytes into the JSON unchecked; so do we.
        data = text.encode("utf-8")
        for marker, value in raw.items():
            data = data.replace(marker.encode(), value)
        return data

    def generate(self, uuid, table, constraints=(), cols_used=None, raw_context=None):
        ctx = raw_context if raw_context is not None else self.context(uuid, table, constraints, cols_used)
        return self.call(uuid, "table", table, {"action": "generate", "context": ctx})
