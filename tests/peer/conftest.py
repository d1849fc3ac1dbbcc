import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from osqueryd_peer import FakeOsqueryd  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("LAUNCHWATCH_BIN", os.path.join(REPO, "target", "debug", "launchwatch"))

# Deadlines are protocol behaviour; on a loaded 2-core CI machine allow 3x.
SLACK = 3.0


def workspace_version():
    in_workspace = False
    with open(os.path.join(REPO, "Cargo.toml")) as f:
        for line in f:
            if line.strip() == "[workspace.package]":
                in_workspace = True
            elif line.startswith("["):
                in_workspace = False
            elif in_workspace and line.startswith("version"):
                return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError("no workspace version")


class Extension:
    """The real launchwatch binary, started the way osqueryd's watcher starts it."""

    def __init__(self, osqueryd, state_dir, config=None, timeout=3, interval=1, verbose=True, env=None, extra_args=()):
        self.osqueryd = osqueryd
        args = [BIN, "--socket", osqueryd.socket_path, "--timeout", str(timeout), "--interval", str(interval)]
        if verbose:
            args.insert(1, "--verbose")
        args += ["--state-dir", state_dir]
        if config:
            args += ["--config", config]
        args += list(extra_args)
        full_env = dict(os.environ, LAUNCHWATCH_TEST_TABLES="1", OSQUERY_EXTENSION=str(os.getpid()))
        full_env.update(env or {})
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, text=True)
        self.started = time.monotonic()

    def wait(self, timeout):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.proc.returncode

    def stderr(self):
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def workdir():
    # Short path: Unix socket names are limited to 104 bytes on macOS, 108 on Linux.
    d = tempfile.mkdtemp(prefix="lw")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def osqueryd(workdir):
    peer = FakeOsqueryd(os.path.join(workdir, "osquery.em")).start()
    yield peer
    peer.stop()


@pytest.fixture
def spawn(workdir):
    started = []

    def _spawn(osqueryd, **kw):
        kw.setdefault("state_dir", os.path.join(workdir, "state"))
        ext = Extension(osqueryd, **kw)
        started.append(ext)
        return ext

    yield _spawn
    for ext in started:
        ext.kill()


def pytest_configure(config):
    if not os.path.exists(BIN):
        raise pytest.UsageError("launchwatch binary not found at %s: run `cargo build` first or set LAUNCHWATCH_BIN" % BIN)
