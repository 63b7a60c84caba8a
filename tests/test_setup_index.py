"""Set-up keeps the pip index the user configured and adds PyTorch's CPU index only when
it answers at once (``tools/torch_index.py``, called by the Makefile's torch rule)."""

from __future__ import annotations

import http.server
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "torch_index.py"


class _Index(http.server.BaseHTTPRequestHandler):
    """A fake package index: answers ``status`` to every GET and records the paths."""

    status = 200

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.paths.append(self.path)
        self.send_response(self.server.status)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html><body></body></html>")

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def index():
    """Start fake indexes: ``index(status)`` -> (server, base URL)."""
    servers = []

    def start(status: int = 200):
        server = http.server.HTTPServer(("127.0.0.1", 0), _Index)
        server.status, server.paths = status, []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, f"http://127.0.0.1:{server.server_address[1]}/whl/cpu"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60
    )


def test_an_index_that_answers_is_added_as_an_extra_index(index):
    server, url = index(200)
    out = probe(url)
    assert out.stdout.strip() == f"--extra-index-url {url}" and out.stderr == ""
    assert server.paths == ["/whl/cpu/torch/"]


def test_an_index_without_torch_or_without_an_answer_is_left_out_at_once(index):
    _, url = index(404)
    out = probe(url)
    assert out.stdout == "" and "HTTP 404" in out.stderr
    with socket.socket() as closed:  # a port nobody listens on: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    out = probe(f"http://127.0.0.1:{port}/whl/cpu")
    assert out.stdout == "" and "did not answer" in out.stderr
    assert probe("").stdout == "" and probe().stdout == ""  # TORCH_INDEX= : pip chooses


def test_an_index_that_never_answers_costs_only_the_probes_timeout():
    """A server that accepts the connection and then says nothing, like an address that
    drops packets: the probe gives up after its timeout and set-up moves on."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever reads or writes
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/whl/cpu"
        start = time.monotonic()
        out = probe(url, "2")
        elapsed = time.monotonic() - start
    assert out.stdout == "" and "did not answer within 2 s" in out.stderr
    assert elapsed < 30, f"set-up waited {elapsed:.0f} s on a silent index"


def test_the_makefile_never_replaces_the_configured_index():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    rule = re.search(r"^\$\(VENV\)/\.torch:.*?\n\n", makefile, re.MULTILINE | re.DOTALL)
    assert rule, "the Makefile's torch rule"
    assert "--index-url" not in rule.group(0), "--index-url would override PIP_INDEX_URL/pip.conf"
    assert '$$($(PY) tools/torch_index.py "$(TORCH_INDEX)")' in rule.group(0)


def test_pip_asks_the_configured_index_and_the_extra_one(index, tmp_path):
    """What the rule runs: the user's index (here PIP_INDEX_URL) stays first in use, and
    the CPU index is asked as well."""
    mirror, mirror_url = index(404)
    cpu, cpu_url = index(200)
    extra = probe(cpu_url).stdout.split()
    env = dict(
        os.environ,
        PIP_CONFIG_FILE=os.devnull,  # no pip.conf or find-links of this machine
        PIP_INDEX_URL=mirror_url.replace("/whl/cpu", "/simple"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_RETRIES="0",
    )
    env.pop("PIP_FIND_LINKS", None)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-deps",
            "--ignore-installed",
            "torch",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert "/simple/torch/" in mirror.paths, mirror.paths
    assert "/whl/cpu/torch/" in cpu.paths[1:], cpu.paths  # [0] is the probe's own request
