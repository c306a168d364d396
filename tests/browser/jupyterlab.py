"""Drive JupyterLab in headless Chromium (Debian's /usr/bin/chromium) with Playwright."""
from __future__ import annotations

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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

KERNEL_NAME = "cifar10-cnn"
KERNEL_DISPLAY_NAME = "CIFAR-10 CNN (.venv)"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# JupyterLab settings for a test: every cell rendered (no windowing), no news or update checks.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"enabled": False},
}
CELL_TIMEOUT_S = 900
START_TIMEOUT_S = 30           # Run All must show a running or finished cell within this


class NotebookProblem(AssertionError):
    """A notebook did not run cleanly in JupyterLab."""


@dataclass
class Result:
    problem: NotebookProblem | None = None
    kernel_name: str = ""
    kernel_display: str = ""
    kernel_python: str = ""
    code_cells: int = 0
    executed_cells: int = 0
    stored_cells: int = 0          # code cells showing a stored output or count when opened
    cleared: bool = False          # JupyterLab's "Clear Outputs of All Cells" left none
    execution_counts: list = field(default_factory=list)   # per code cell, after Run All
    cells: list = field(default_factory=list)               # the DOM's view of each cell at the end
    figure_cells: int = 0
    figures_rendered: int = 0
    console_errors: list = field(default_factory=list)
    seconds: float = 0.0           # from opening the notebook to the end of its checks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    def __init__(self, url, token):
        self.url, self.token = url, token

    def api(self, path, method="GET"):
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
        return json.loads(body) if body else None


@contextmanager
def jupyter_lab(root: Path, scratch: Path):
    """Start JupyterLab on a free loopback port with a token; always shut it down."""
    settings = scratch / "lab-settings"
    for rel, values in LAB_SETTINGS.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTER_CONFIG_DIR=str(scratch / "config"), JUPYTER_RUNTIME_DIR=str(scratch / "runtime"))
    log = open(scratch / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root}",
         f"--IdentityProvider.token={token}"] + (["--allow-root"] if os.geteuid() == 0 else []),
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    lab = Lab(f"http://127.0.0.1:{port}", token)
    try:
        deadline = time.time() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited at start: {(scratch / 'jupyterlab.log').read_text()[-2000:]}")
            try:
                lab.api("/api/status")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.time() > deadline:
                    raise RuntimeError("JupyterLab did not answer within 90 s") from None
                time.sleep(0.5)
        yield lab
    finally:
        try:
            lab.api("/api/shutdown", method="POST")
            proc.wait(timeout=30)
        except Exception:
            pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


_PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
_CELLS_JS = """
() => Array.from(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')).map((cell, i) => ({
  index: i,
  code: cell.classList.contains('jp-CodeCell'),
  prompt: (cell.querySelector('.jp-InputArea-prompt') || {}).textContent || '',
  outputs: cell.querySelectorAll('.jp-OutputArea-output').length,
  text: Array.from(cell.querySelectorAll('.jp-OutputArea-output')).map(o => o.textContent).join('\\n').slice(0, 2000),
  source: Array.from(cell.querySelectorAll('.cm-line')).map(l => l.textContent).join('\\n'),
  errors: Array.from(cell.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')).map(o => o.textContent.slice(0, 400)),
  images: cell.querySelectorAll('.jp-OutputArea-output img').length,
}))
"""


def _count(prompt: str):
    """The execution count a prompt shows ("[12]:" -> 12), None for "[ ]:" or "[*]:"."""
    digits = "".join(ch for ch in prompt if ch.isdigit())
    return int(digits) if digits else None


def _clear_all_outputs(page, name: str) -> int:
    """Edit > Clear Outputs of All Cells, as a reader would; wait until no cell shows an output
    or an execution count. Returns how many code cells showed stored ones before."""
    before = [c for c in page.evaluate(_CELLS_JS) if c["code"]]
    stored = sum(bool(c["outputs"] or _count(c["prompt"]) is not None) for c in before)
    page.click(".lm-MenuBar-itemLabel:text-is('Edit')")
    page.click("li.lm-Menu-item[data-command='editmenu:clear-all']")
    deadline = time.time() + 20
    while True:
        left = [c["index"] for c in page.evaluate(_CELLS_JS)
                if c["code"] and (c["outputs"] or _count(c["prompt"]) is not None)]
        if not left:
            return stored
        if time.time() > deadline:
            raise NotebookProblem(f"{name}: cells {left} still show an output or execution count "
                                  "after Clear Outputs of All Cells")
        time.sleep(0.5)


def _session(lab: Lab, name: str):
    for s in lab.api("/api/sessions"):
        if s["path"].endswith(name):
            return s
    return None


def _wait_idle(lab: Lab, name: str, timeout: float):
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = _session(lab, name)
        if s and s["kernel"]["execution_state"] == "idle":
            return s
        time.sleep(1)
    raise NotebookProblem(f"{name}: the kernel did not become idle within {timeout:.0f} s")


def run_notebook(browser, lab: Lab, name: str, screenshot: Path, run_all: bool = True) -> Result:
    """Open `name`, clear all its outputs, Run All (unless run_all is False: the test's own
    control, which must then fail), and check what the page shows."""
    result, opened = Result(), time.time()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("console", lambda m: result.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: result.console_errors.append(f"page error: {e}"))
    try:
        # a workspace of its own per notebook, so no tab of the previous one is restored
        page.goto(f"{lab.url}/lab/workspaces/{Path(name).stem}/tree/{name}?reset&token={lab.token}")
        page.wait_for_selector(f"{_PANEL} .jp-Notebook .jp-Cell", timeout=60_000)
        session = _wait_idle(lab, name, 120)
        spec = lab.api("/api/kernelspecs")["kernelspecs"].get(session["kernel"]["name"], {})
        result.kernel_name = session["kernel"]["name"]
        result.kernel_display = spec.get("spec", {}).get("display_name", "")
        argv0 = (spec.get("spec", {}).get("argv") or [""])[0]
        result.kernel_python = argv0

        # Nothing stored may count as this run's: clear every output and execution count first.
        result.stored_cells = _clear_all_outputs(page, name)
        result.cleared = True

        if run_all:
            page.click(".lm-MenuBar-itemLabel:text-is('Run')")
            page.click("li.lm-Menu-item[data-command='runmenu:run-all']")
        started, seen_start = time.time(), False
        while True:
            time.sleep(2)
            cells = page.evaluate(_CELLS_JS)
            prompts = [c["prompt"] for c in cells if c["code"]]
            running = any("*" in p for p in prompts)
            seen_start = seen_start or running or any(_count(p) is not None for p in prompts)
            session = _session(lab, name)
            if not running and session and session["kernel"]["execution_state"] == "idle" \
                    and any(_count(p) is not None for p in prompts):
                break
            # On a cleared notebook, a prompt that shows [*] or a count can only be this run's.
            if not seen_start and time.time() - started > START_TIMEOUT_S:
                raise NotebookProblem(f"{name}: Run All started no cell within {START_TIMEOUT_S} s")
            if time.time() - started > CELL_TIMEOUT_S * 2:
                raise NotebookProblem(f"{name}: Run All did not finish within {CELL_TIMEOUT_S * 2} s")
        cells = page.evaluate(_CELLS_JS)
        result.cells = cells
        code = [c for c in cells if c["code"]]
        result.code_cells = len(code)
        result.execution_counts = [_count(c["prompt"]) for c in code]
        result.executed_cells = sum(any(ch.isdigit() for ch in c["prompt"]) for c in code)
        figures = [c for c in code if "plt.show()" in c["source"]]
        result.figure_cells = len(figures)
        result.figures_rendered = sum(c["images"] > 0 for c in figures)
        for c in code:
            if c["errors"]:
                first = c["errors"][0].strip().splitlines()
                raise NotebookProblem(f"{name}: cell {c['index']} shows an error or stderr output: "
                                      + " | ".join(first[:3] + first[-2:]))
        unrun = [c["index"] for c in code if not any(ch.isdigit() for ch in c["prompt"])]
        if unrun:
            raise NotebookProblem(f"{name}: cells {unrun} never ran")
        # A fresh kernel numbers its executions from 1: Run All from a cleared notebook must show
        # exactly 1, 2, ..., N in cell order, so no count can be a stored or an earlier run's.
        if result.execution_counts != list(range(1, len(code) + 1)):
            raise NotebookProblem(f"{name}: execution counts {result.execution_counts} are not "
                                  f"1..{len(code)} in cell order: not one fresh Run All")
        missing = [c["index"] for c in figures if not c["images"]]
        if missing:
            raise NotebookProblem(f"{name}: figure cells {missing} rendered no image")
    except NotebookProblem as problem:
        result.problem = problem
    finally:
        result.seconds = time.time() - opened
        try:
            height = page.evaluate("() => (document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) "
                                   ".jp-WindowedPanel-outer') || document.body).scrollHeight")
            page.set_viewport_size({"width": 1400, "height": int(min(max(height + 150, 1000), 32_000))})
            page.wait_for_timeout(500)
            # Run All leaves the notebook scrolled to its end: show it from the top
            page.evaluate("() => { const s = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) "
                          ".jp-WindowedPanel-outer'); if (s) s.scrollTop = 0; }")
            page.wait_for_timeout(500)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            page.close()
            session = _session(lab, name)
            if session:
                lab.api(f"/api/sessions/{session['id']}", method="DELETE")
    return result


def run_in_lab(root: Path, names, screenshots: Path, not_run=()) -> dict[str, Result]:
    """Run each notebook in `names`; those also in `not_run` are opened and cleared but not
    run, a control that checks the test cannot pass on what the notebook had stored."""
    if not Path(CHROMIUM).is_file():
        raise RuntimeError(f"{CHROMIUM} not found: install Debian's chromium package "
                           "(apt-get install chromium) or set CHROMIUM to a Chromium binary.")
    from playwright.sync_api import sync_playwright

    results = {}
    with jupyter_lab(root, root / ".scratch") as lab, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name in names:
                results[name] = run_notebook(browser, lab, name, screenshots / f"{Path(name).stem}.png",
                                             run_all=name not in not_run)
        finally:
            browser.close()
    return results
