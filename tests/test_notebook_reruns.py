"""Readers re-run notebooks: "Run All" twice in one kernel must give the same outputs,
and notebook 04 run before 03 must stop with a clear message, not a traceback."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from helpers import get_settings

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CHECK = "# NBVAL_CHECK_OUTPUT"


def _text(outputs):
    parts = []
    for out in outputs:
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif out.get("output_type") in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
        elif out.get("output_type") == "error":
            parts.append(f"ERROR {out['ename']}: {out['evalue']}")
    return "".join(parts)


def _checked(nb):
    return {i: _text(c.outputs) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and c.source.startswith(CHECK)}


def _all_text(nb):
    return {i: _text(c.outputs) for i, c in enumerate(nb.cells) if c.cell_type == "code"}


def _kinds(nb):
    """What each code cell showed, by kind: printed text, a figure, a table (a mode changes the
    numbers, never which cell prints, draws or tabulates)."""
    def kind(out):
        if out.get("output_type") == "stream":
            return f"stream:{out['name']}"
        return "+".join(sorted(out.get("data", {}))) or out.get("output_type")
    return {i: sorted({kind(out) for out in c.outputs}) for i, c in enumerate(nb.cells)
            if c.cell_type == "code"}


def _client(nb):
    return NotebookClient(nb, timeout=900, kernel_name="cifar10-cnn",
                          resources={"metadata": {"path": str(NOTEBOOKS)}})


# What is compared between the two passes: the checked cells (nbval compares those with the
# stored full-mode outputs too), or, for notebook 04, every cell's text. Training (03) is not
# bit-for-bit repeatable on every machine, so its losses are not compared; 04 only evaluates
# and predicts with the saved model, so everything it prints must repeat exactly.
CASES = [("01_data_loading.ipynb", _checked), ("02_data_format_conversion.ipynb", _checked),
         ("03_model_building_and_training.ipynb", _checked), ("04_model_validation.ipynb", _all_text),
         ("05_going_further.ipynb", _checked)]


@pytest.mark.parametrize("name, compared", CASES, ids=[name for name, _ in CASES])
def test_run_all_twice_in_one_kernel_gives_the_same_outputs(name, compared):
    if name.startswith("04") and not get_settings().model_path.is_file():
        _client(nbformat.read(NOTEBOOKS / "03_model_building_and_training.ipynb", 4)).execute()
    stored = nbformat.read(NOTEBOOKS / name, as_version=4)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = _client(nb)
    passes = []
    with client.setup_kernel():
        for _ in range(2):
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
            passes.append(compared(nb))
            assert "ERROR" not in "".join(passes[-1].values()), f"{name}: a cell failed"
    assert any(passes[0].values()), f"{name}: nothing to compare"
    assert passes[0] == passes[1], f"{name}: a second Run All changed the outputs"
    if compared is _checked:
        assert _checked(stored), f"{name}: no cell marked {CHECK}, so nothing is compared with the stored run"
        assert _checked(nb) == _checked(stored), f"{name}: checked outputs differ from the stored ones"
    else:   # 04 prints only model-dependent numbers: compare what each cell shows with the stored run
        assert _kinds(nb) == _kinds(stored), f"{name}: cells show other kinds of output than the stored run"
    if name.startswith("03"):
        assert get_settings().model_path.is_file()


def test_notebook_04_before_03_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR10_ARTIFACTS", str(tmp_path))     # no model there yet
    nb = nbformat.read(NOTEBOOKS / "04_model_validation.ipynb", as_version=4)
    client = _client(nb)
    with pytest.raises(CellExecutionError) as failure:
        client.execute()
    message = str(failure.value)
    assert "MissingArtifactError" in message
    assert "Run 03_model_building_and_training.ipynb first" in message
    assert "Traceback" not in message.split("MissingArtifactError", 1)[1]
    # the kernel ran in quick mode, and the message names that mode's command
    assert "(CIFAR10_QUICK=1 make run does all four notebooks in order)" in message


def test_notebook_04_runs_against_a_read_only_shared_artifacts_folder(tmp_path, monkeypatch):
    """A teacher trains once and shares the folder read-only; notebook 04 must only read it."""
    from helpers import build_article_model, save_history, save_model_atomically
    shared = tmp_path / "shared-artifacts"
    monkeypatch.setenv("CIFAR10_ARTIFACTS", str(shared))
    settings = get_settings()                                   # quick mode: shared/quick/
    save_model_atomically(build_article_model(seed=0), settings.model_path)
    save_history({"loss": [2.0, 1.8], "accuracy": [0.3, 0.35], "val_loss": [1.9, 1.85],
                  "val_accuracy": [0.32, 0.34]}, settings.history_path)
    folders = [shared, settings.artifacts]
    for path in [settings.model_path, settings.history_path]:
        path.chmod(0o444)
    for folder in reversed(folders):
        folder.chmod(0o555)
    before = sorted((p.relative_to(shared), p.stat().st_size, p.stat().st_mtime_ns) for p in shared.rglob("*"))
    try:
        nb = nbformat.read(NOTEBOOKS / "04_model_validation.ipynb", as_version=4)
        _client(nb).execute()                                   # raises on any failing cell
    finally:
        for folder in folders:
            folder.chmod(0o755)
    after = sorted((p.relative_to(shared), p.stat().st_size, p.stat().st_mtime_ns) for p in shared.rglob("*"))
    assert after == before, "notebook 04 wrote into the shared artifacts folder"
    text = _all_text(nb)
    assert any("epochs in the history: 2" in t for t in text.values())
