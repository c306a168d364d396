"""The series as a reader meets it: JupyterLab in a real (headless) Chromium.

Run with `make test-browser` (CI runs it after `make test`). For each notebook: open it with a
fresh kernel, "Clear Outputs of All Cells" through JupyterLab's Edit menu (the notebooks are
stored with the outputs of a full run, which must not count as this run's), "Run All Cells"
through the Run menu, wait for the kernel to go idle, then check that the kernel is the
project's, every code cell shows execution counts 1, 2, ..., N in order (one fresh Run All), the
outputs are this run's (quick mode, where the stored ones say full mode), no cell shows an
error, every figure cell shows an image, and the browser console logged no errors. A full-page
screenshot of each notebook's end state goes to artifacts/quick/screenshots/ (or
CIFAR10_SCREENSHOTS), with the seconds each notebook took in seconds.txt.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest

from .jupyterlab import KERNEL_DISPLAY_NAME, KERNEL_NAME, NotebookProblem, run_in_lab

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))
SOLUTIONS = sorted((REPO / "notebooks" / "solutions").glob("[0-9]*.ipynb"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A copy of the notebooks: JupyterLab autosaves, and must not touch the stored outputs."""
    folder = tmp_path_factory.mktemp("lab")
    for nb in NOTEBOOKS:
        shutil.copy(nb, folder / nb.name)
    (folder / "solutions").mkdir()
    for nb in SOLUTIONS:
        shutil.copy(nb, folder / "solutions" / nb.name)
    for control in ["raises.ipynb", "stored.ipynb"]:
        shutil.copy(Path(__file__).parent / control, folder / control)
    return folder


@pytest.fixture(scope="module")
def stored(workdir):
    """What each copy held before JupyterLab opened (and autosaved) it: how many code cells had an
    output or an execution count."""
    found = {}
    for path in workdir.rglob("*.ipynb"):
        cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        found[path.relative_to(workdir).as_posix()] = sum(bool(c.outputs) or c.execution_count is not None
                                                          for c in cells)
    return found


@pytest.fixture(scope="module")
def screenshots():
    """Kept after the test (the test run's own artifacts folder is temporary)."""
    folder = Path(os.environ.get("CIFAR10_SCREENSHOTS") or REPO / "artifacts" / "quick" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


QUICK_LINE, FULL_LINE = "quick mode (CIFAR10_QUICK=1)", "full mode (the article's settings)"


def test_series_runs_cleanly_in_jupyterlab(workdir, stored, screenshots):
    names = ([nb.name for nb in NOTEBOOKS] + [f"solutions/{nb.name}" for nb in SOLUTIONS]
             + ["raises.ipynb", "stored.ipynb"])
    results = run_in_lab(workdir, names, screenshots, not_run=["stored.ipynb"])
    (screenshots / "seconds.txt").write_text("".join(f"{r.seconds:6.0f} s  {name}\n" for name, r in results.items()))
    assert len(NOTEBOOKS) == 5 and len(SOLUTIONS) == 5
    for name in names[:-2]:
        result = results[name]
        assert result.problem is None, f"{name}: {result.problem}"
        assert result.kernel_name == KERNEL_NAME and result.kernel_display == KERNEL_DISPLAY_NAME
        assert result.kernel_python.startswith(str(REPO / ".venv")), result.kernel_python
        assert result.code_cells >= 5 and result.executed_cells == result.code_cells
        # What the reader saw is this run's: the page showed what the file stored (the outputs of a
        # full-mode run), JupyterLab cleared it all, and one Run All numbered every cell afresh.
        assert result.cleared and result.stored_cells == stored[name], (name, result.stored_cells, stored[name])
        assert result.execution_counts == list(range(1, result.code_cells + 1)), result.execution_counts
        shown = "\n".join(c["text"] for c in result.cells)
        assert QUICK_LINE in shown and FULL_LINE not in shown, f"{name}: outputs not from this run"
        assert result.figures_rendered == result.figure_cells
        if not name.startswith("solutions/"):
            assert result.figure_cells >= 1
        assert result.console_errors == [], result.console_errors
        shot = screenshots / f"{Path(name).stem}.png"
        assert shot.is_file() and shot.stat().st_size > 50_000
    # A notebook whose cell raises must be reported as a failure, naming the cell and the error.
    bad = results["raises.ipynb"].problem
    assert isinstance(bad, NotebookProblem)
    assert "cell 2" in str(bad) and "ZeroDivisionError" in str(bad), str(bad)
    # The control: a notebook stored with outputs that would pass every check above, opened,
    # cleared and not run, must fail. Were the outputs not cleared first, it would pass.
    control = results["stored.ipynb"]
    assert control.cleared and control.stored_cells == stored["stored.ipynb"] == 2
    assert isinstance(control.problem, NotebookProblem) and "started no cell" in str(control.problem)
