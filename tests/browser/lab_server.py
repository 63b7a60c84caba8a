"""A JupyterLab server for browser tests, and helpers that drive it through Playwright.

The server runs the course's own ``jupyter`` on 127.0.0.1 with a random free port and a
token, in a temporary folder, with Jupyter's config, data, runtime, settings and workspace
folders also temporary: the user's own settings or kernels cannot leak in, and the
notebook kernel is this virtual environment's ``python3``. ``stop()`` always shuts it down
(the API first, so kernels end too; then SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import ast
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 180
JUPYTER = Path(sys.executable).with_name("jupyter")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JupyterLabServer:
    """``jupyter lab`` serving ``root_dir``; use as a context manager."""

    def __init__(self, root_dir: Path, work_dir: Path, env: dict[str, str] | None = None):
        self.root_dir = Path(root_dir)
        self.work_dir = Path(work_dir)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.log_path = self.work_dir / "jupyter-lab.log"
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base_url}/{path.lstrip('/')}{sep}token={self.token}"

    def command(self) -> list[str]:
        cmd = [
            str(JUPYTER),
            "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        return cmd

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
        jupyter_home = self.work_dir / "jupyter"
        for var, sub in {
            "JUPYTER_CONFIG_DIR": "config",
            "JUPYTER_DATA_DIR": "data",
            "JUPYTER_RUNTIME_DIR": "runtime",
            "JUPYTERLAB_SETTINGS_DIR": "settings",
            "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
            "IPYTHONDIR": "ipython",
        }.items():
            (jupyter_home / sub).mkdir(parents=True, exist_ok=True)
            env[var] = str(jupyter_home / sub)
        # No "get Jupyter news?" toast over the page, and no requests for news or updates.
        settings = jupyter_home / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        env.update(self.extra_env)
        return env

    def api(self, method: str, path: str, timeout: float = 10.0):
        request = urllib.request.Request(
            f"{self.base_url}/api/{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
            data=b"" if method == "POST" else None,
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def start(self) -> JupyterLabServer:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command(),
            cwd=self.root_dir,
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"jupyter lab exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                self.api("GET", "status", timeout=2)
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"jupyter lab did not answer within {START_TIMEOUT_S} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def kernel_ids(self) -> list[str]:
        return [k["id"] for k in self.api("GET", "kernels")]

    def stop(self) -> None:
        """Shut the server and its kernels down; never leaves a process behind."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            self.api("POST", "shutdown", timeout=10)
            process.wait(timeout=30)
            return
        except (OSError, urllib.error.URLError, subprocess.TimeoutExpired):
            pass
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> JupyterLabServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ----------------------------------------------------------------- page helpers

APP_READY_S = 180  # a cold JupyterLab page on 2 busy cores can take a minute
KERNEL_READY_S = 120


FIND_PANEL = """(name) => {
  const app = window.jupyterapp;
  if (!app || !app.shell) { return false; }
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === name && w.content && w.content.widgets
        && w.content.widgets.length > 0) {
      app.shell.activateById(w.id);
      window.__coursePanel = w;
      return true;
    }
  }
  return false;
}"""


def open_notebook(page, server: JupyterLabServer, name: str) -> None:
    """Open ``name`` in JupyterLab, make it the current widget, wait for an idle kernel."""
    page.goto(server.url(f"lab/tree/{name}?reset"), timeout=APP_READY_S * 1000)
    page.wait_for_function(FIND_PANEL, arg=name, timeout=APP_READY_S * 1000, polling=500)
    wait_kernel_idle(page)


def wait_kernel_idle(page, timeout_s: float = KERNEL_READY_S) -> None:
    page.wait_for_function(
        "() => { const w = window.__coursePanel;"
        " const k = w && w.sessionContext && w.sessionContext.session"
        " && w.sessionContext.session.kernel;"
        " return !!k && k.status === 'idle'; }",
        timeout=timeout_s * 1000,
        polling=500,
    )


def run_command(page, command: str, timeout_s: float):
    """Execute a JupyterLab command and wait (bounded) for the promise it returns."""
    page.evaluate(
        "(cmd) => { window.__courseCommand = 'running';"
        " window.jupyterapp.commands.execute(cmd).then("
        "  (r) => { window.__courseCommand = (r === false) ? 'failed' : 'done'; },"
        "  (e) => { window.__courseCommand = 'error: ' + e; }); }",
        command,
    )
    page.wait_for_function(
        "() => window.__courseCommand !== 'running'", timeout=timeout_s * 1000, polling=500
    )
    return page.evaluate("() => window.__courseCommand")


def run_cells_through(page, index: int, timeout_s: float) -> None:
    """Run every cell above ``index`` ("Run All Above Selected Cell"), then cell ``index``.

    Each step is bounded by ``timeout_s``; a cell error fails with the error text.
    """
    page.evaluate(
        "(i) => { const w = window.__coursePanel;"
        " window.jupyterapp.shell.activateById(w.id); w.content.activeCellIndex = i; }",
        index,
    )
    for command in ("notebook:run-all-above", "notebook:run-cell"):
        result = run_command(page, command, timeout_s)
        if result != "done":
            raise AssertionError(f"{command}: {result}; errors shown: {cell_errors(page)}")
        wait_kernel_idle(page, timeout_s)


def run_cells(page, indices: list[int], timeout_s: float) -> None:
    """Run the cells at ``indices``, in order, each bounded by ``timeout_s``."""
    for index in indices:
        page.evaluate(
            "(i) => { const w = window.__coursePanel;"
            " window.jupyterapp.shell.activateById(w.id); w.content.activeCellIndex = i; }",
            index,
        )
        result = run_command(page, "notebook:run-cell", timeout_s)
        if result != "done":
            raise AssertionError(f"cell {index}: {result}; errors shown: {cell_errors(page)}")
        wait_kernel_idle(page, timeout_s)


def _defined_and_used(source: str) -> tuple[set[str], set[str]]:
    """Names a cell binds at top level, and every name it reads (empty if not Python)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics
        return set(), set()
    defined, used = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (defined if isinstance(node.ctx, ast.Store) else used).add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
    return defined, used


def cells_needed(sources: list[str | None], target: int) -> list[int]:
    """The code cells that ``target`` needs: for each name it reads, the latest earlier
    cell that binds it, and so on for the names those cells read.

    ``sources[i]`` is None for markdown cells. The first code cell (imports and settings)
    is always included. A static reading of names, enough to run a widget cell without
    running a whole chapter; in-place changes made by other cells are not followed.
    """
    needed = _defined_and_used(sources[target])[1]
    chosen = [target]
    for index in range(target - 1, -1, -1):
        if sources[index] is None:
            continue
        defined, used = _defined_and_used(sources[index])
        if defined & needed:
            chosen.append(index)
            needed = (needed - defined) | used
    first = next(i for i, src in enumerate(sources) if src is not None)
    return sorted(set(chosen) | {first})


def code_sources(page) -> list[str | None]:
    """Each cell's source, None for cells that are not code."""
    return page.evaluate(
        "() => window.__coursePanel.content.widgets.map("
        "c => c.model.type === 'code' ? c.model.sharedModel.getSource() : null)"
    )


def cell_errors(page) -> list[str]:
    """Text of the error and stderr outputs shown in the notebook."""
    return page.evaluate(
        "() => Array.from(document.querySelectorAll("
        "'.jp-OutputArea-output[data-mime-type*=error], "
        ".jp-OutputArea-output[data-mime-type*=stderr]'))"
        ".map(e => e.innerText.slice(0, 800))"
    )


def cell_output_text(page, index: int) -> str:
    return page.evaluate(
        "(i) => window.__coursePanel.content.widgets[i].node"
        ".querySelector('.jp-OutputArea') ?.innerText || ''",
        index,
    )
