"""The series as a reader meets it: JupyterLab in a real (headless) Chromium.

Run with `make test-browser` (CI runs it after `make test`). For each notebook: start from a
fresh kernel, "Run All Cells" through JupyterLab's menu, wait for the kernel to go idle, then
check that the kernel is the project's, no cell shows an error, every figure cell shows an
image, and the browser console logged no errors. A full-page screenshot of each notebook's
end state goes to artifacts/quick/screenshots/ (or CIFAR10_SCREENSHOTS).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

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
    shutil.copy(Path(__file__).parent / "raises.ipynb", folder / "raises.ipynb")
    return folder


@pytest.fixture(scope="module")
def screenshots():
    """Kept after the test (the test run's own artifacts folder is temporary)."""
    folder = Path(os.environ.get("CIFAR10_SCREENSHOTS") or REPO / "artifacts" / "quick" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_series_runs_cleanly_in_jupyterlab(workdir, screenshots):
    names = ([nb.name for nb in NOTEBOOKS] + [f"solutions/{nb.name}" for nb in SOLUTIONS]
             + ["raises.ipynb"])
    results = run_in_lab(workdir, names, screenshots)
    assert len(NOTEBOOKS) == 5 and len(SOLUTIONS) == 5
    for name in names[:-1]:
        result = results[name]
        assert result.problem is None, f"{name}: {result.problem}"
        assert result.kernel_name == KERNEL_NAME and result.kernel_display == KERNEL_DISPLAY_NAME
        assert result.kernel_python.startswith(str(REPO / ".venv")), result.kernel_python
        assert result.code_cells >= 5 and result.executed_cells == result.code_cells
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
