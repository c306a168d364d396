"""Notebook 05 computes what it teaches: its ablation statistics, its flip averaging, its test
evaluation and its confusions are recomputed here, independently, from values read out of its
kernel after a quick-mode run; and no cell before "The test set, once" can reach the test set.
"""
import ast
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import convert_data_format, get_settings
from helpers.further import ABLATION
from notebook_kernel import execute_notebook

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "05_going_further.ipynb"
TEST_HEADING = "## The test set, once"
READ = {
    "runs": "runs", "acc": "acc", "summary": "summary", "bases": "bases",
    "val_head": "x_val[:8]", "val_true": "val_true", "n_train": "len(x_train)",
    "probs_new": "probs_new", "probs_new_flip": "probs_new_flip", "y_new": "y_new", "y_true": "y_true",
    "test_accuracy": "test_accuracy", "flip_accuracy": "flip_accuracy",
    # the mirror images, predicted again in the kernel with NumPy's own left-right flip
    "mirror_probs": "saved.predict(np.flip(x_test_raw[:64], axis=2).astype('float32') / 255, verbose=0)",
    "plain_probs": "saved.predict(x_test_raw[-64:].astype('float32') / 255, verbose=0)",
    "top_prob": "top_prob", "wrong": "wrong", "worst": "worst", "new_pairs": "new_pairs",
    "article_minutes": "article_minutes", "budget": "budget", "fastest": "FASTEST",
    "final_lr_at_end": "float(final_model.optimizer.learning_rate)",
    "final_iterations": "int(final_model.optimizer.iterations)",
    "total_steps": "budget['final_epochs'] * steps_per_epoch",
    "checkpoint_monitor": "checkpoint.monitor", "checkpoint_epoch": "checkpoint.best_epoch",
    "n_final": "len(x_final)", "final_head": "x_final[:8]", "final_tail": "x_final[-8:]",
    "final_labels": "y_final.ravel()", "full_budget": "BUDGETS['full']",
    # last, since it trains: row B twice more, seeds 0 and 1, on 64 images for one epoch each
    "rows_compiled": "list(compiled)",
    "seeds_share_a_network": "train_row('B', configs['B'], 0, 'auto', 64, 1)[0] is "
                             "train_row('B', configs['B'], 1, 'auto', 64, 1)[0]",
}


def _cells():
    return json.loads(NOTEBOOK.read_text())["cells"]


def _source(cell):
    return "".join(cell["source"])


@pytest.fixture(scope="module")
def nb(tmp_path_factory):
    folder = tmp_path_factory.mktemp("further-notebook")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIFAR10_ARTIFACTS", str(folder))
        return execute_notebook(NOTEBOOK, READ, folder)


# --------------------------------------------------------------------------- static: the test set stays out

def test_no_cell_before_the_test_heading_can_reach_the_test_set():
    cells = _cells()
    heading = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and TEST_HEADING in _source(c)]
    assert len(heading) == 1, f"notebook 05 needs exactly one '{TEST_HEADING}' heading"
    before = [_source(c) for c in cells[:heading[0]] if c["cell_type"] == "code"]
    loads = 0
    for src in before:
        assert not re.search(r"\b[xy]_test", src), f"a cell before the test heading names the test set:\n{src}"
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
                    and getattr(node.value.func, "attr", None) == "load_cifar10":
                loads += 1
                target = node.targets[0]
                # (x, y), _ = load_cifar10(): the second pair (the test split) is bound to `_` only
                assert isinstance(target, ast.Tuple) and isinstance(target.elts[1], ast.Name) \
                    and target.elts[1].id == "_", f"the test split must be dropped:\n{src}"
        if "load_cifar10" in src:
            assert re.search(r"\bdel\b[^\n]*\b_\b", src), "the dropped test split must be deleted"
    assert loads == 1
    after = "".join(_source(c) for c in cells[heading[0]:] if c["cell_type"] == "code")
    assert "_, (x_test_raw, y_test_raw) = helpers.load_cifar10(train=False)" in after   # the test split alone


def test_no_fit_validates_on_or_trains_on_the_test_set():
    code = "\n".join(_source(c) for c in _cells() if c["cell_type"] == "code")
    fits = re.findall(r"\.fit\((.*?)\)\n", code, flags=re.S)
    assert fits and all("x_test" not in f and "validation_data" not in f for f in fits)
    assert sum("AugmentedImages(x_final, y_final" in f for f in fits) == 1            # the final recipe


# --------------------------------------------------------------------------- dynamic: recomputed

def test_validation_images_are_the_held_out_training_images(nb, real_data):
    (x, y), _ = real_data
    settings = get_settings()
    expected, _ = convert_data_format(x[-settings.n_val:][:8], y[-settings.n_val:][:8])
    np.testing.assert_array_equal(nb["val_head"], expected)
    np.testing.assert_array_equal(nb["val_true"], y[-settings.n_val:].ravel())
    assert nb["n_train"] == settings.n_train


def test_the_ablation_table_is_the_runs_statistics(nb):
    runs = pd.DataFrame(nb["runs"])
    rows = [row for row, *_ in ABLATION] + ["flip"]
    assert list(nb["summary"].index) == rows
    seeds = list(nb["budget"]["seeds"])
    for row in rows:
        values = runs.loc[runs.row == row].sort_values("seed")["validation accuracy"].to_numpy()
        assert len(values) == len(seeds)
        assert nb["summary"].loc[row, "mean"] == pytest.approx(values.mean())
        base = nb["bases"][row]
        if base:
            base_values = runs.loc[runs.row == base].sort_values("seed")["validation accuracy"].to_numpy()
            assert nb["summary"].loc[row, "difference"] == pytest.approx((values - base_values).mean())
    assert nb["bases"]["flip"] == ABLATION[-1][0]
    assert {r: b for r, _, b, _ in ABLATION} == {r: b for r, b in nb["bases"].items() if r != "flip"}


def test_each_rows_compile_setting_is_the_one_the_table_states(nb):
    runs = pd.DataFrame(nb["runs"])
    fastest, last = nb["fastest"], ABLATION[-1][0]
    for row in runs.row.unique():
        stated = set(runs.loc[runs.row == row, "XLA"])
        expected = {"on" if fastest["A"] else "off"} if row == "A" else \
            {"on" if fastest[last] else "off"} if row in (last, "flip") else {"off (default)"}
        assert stated == expected, row
        assert nb["summary"].loc[row, "XLA"] in expected


def test_test_accuracy_and_flip_averaging_are_what_they_say(nb):
    y_true, probs = nb["y_true"], nb["probs_new"]
    assert len(y_true) == 10_000
    assert np.array_equal(nb["y_new"], probs.argmax(axis=1))
    assert nb["test_accuracy"] == pytest.approx((probs.argmax(axis=1) == y_true).mean())
    # the notebook's batch-by-batch probabilities are the model's, image for image (the last 64 too)
    np.testing.assert_allclose(probs[-64:], nb["plain_probs"], atol=1e-5)
    # flip averaging: the mean of the image's and its left-right mirror image's probabilities
    np.testing.assert_allclose(nb["probs_new_flip"][:64], (probs[:64] + nb["mirror_probs"]) / 2, atol=1e-5)
    assert nb["flip_accuracy"] == pytest.approx((nb["probs_new_flip"].argmax(axis=1) == y_true).mean())


def test_confident_mistakes_and_confused_pairs(nb):
    y_true, y_new, top = nb["y_true"], nb["y_new"], nb["top_prob"]
    np.testing.assert_array_equal(top, nb["probs_new"].max(axis=1))
    assert set(nb["wrong"]) == set(np.flatnonzero(y_new != y_true))
    worst = nb["worst"]
    assert len(worst) == min(16, len(nb["wrong"]))
    assert np.all(np.diff(top[worst]) <= 0)                                # falling confidence
    assert top[worst[-1]] >= np.sort(top[nb["wrong"]])[::-1][len(worst) - 1]  # and the most confident ones
    m = np.zeros((10, 10), int)
    np.add.at(m, (y_true, y_new), 1)                                      # rows: true classes
    names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    for (a, b), count in nb["new_pairs"].items():
        i, j = names.index(a), names.index(b)
        assert count == m[i, j] + m[j, i]


def test_the_final_learning_rate_reaches_zero_at_the_last_step(nb):
    assert nb["final_iterations"] == nb["total_steps"]
    assert nb["final_lr_at_end"] == pytest.approx(0.0, abs=1e-7)
    assert nb["checkpoint_monitor"] == "loss"                # no held-out images are left
    assert nb["checkpoint_epoch"] == nb["budget"]["final_epochs"]


def test_the_final_model_learns_from_the_training_and_validation_images(nb, real_data):
    """All 50,000 training images in full mode (the ablation's 45,000 and the 5,000 validation
    images), in that order, with their own labels; and as many steps as 10 epochs of the 45,000."""
    (x, y), _ = real_data
    settings = get_settings()
    assert nb["n_final"] == settings.n_train + settings.n_val
    np.testing.assert_array_equal(nb["final_head"], x[:8])
    np.testing.assert_array_equal(nb["final_tail"], x[-8:])            # the validation images come last
    np.testing.assert_array_equal(nb["final_labels"][-settings.n_val:], nb["val_true"])
    full_steps = nb["full_budget"]["final_epochs"] * -(-50_000 // 512)
    assert abs(full_steps - 10 * -(-45_000 // 512)) <= 2


def test_the_article_time_is_row_a_scaled_to_its_10_epochs(nb):
    runs = pd.DataFrame(nb["runs"])
    a = runs[runs.row == "A"]
    expected = 10 * (a["train s per 1,000 images"].mean() * 45 + a["validation s"].mean()) / 60
    assert nb["article_minutes"] == pytest.approx(expected)


def test_the_ablation_compiles_one_network_per_row(nb):
    """The seeds of a row restart its compiled network (restart_network) instead of compiling new
    ones: TensorFlow keeps about 30 MB of every compiled training step."""
    assert nb["rows_compiled"] == [ABLATION[-1][0]]         # only the last row's network is kept
    assert nb["seeds_share_a_network"]


# --------------------------------------------------------------------------- static: the prose quotes the stored run

def _stored_text(marker):
    """The text outputs of the one code cell whose source contains `marker`."""
    cells = [c for c in _cells() if c["cell_type"] == "code" and marker in _source(c)]
    assert len(cells) == 1, f"expected one code cell containing {marker!r}, found {len(cells)}"
    return "".join("".join(o.get("text", "")) for o in cells[0].get("outputs", []))


def test_the_headline_figures_in_the_prose_are_the_stored_runs():
    """The title, the test-set cell's text, the summary and the README quote the stored outputs."""
    tested = _stored_text("test_accuracy, flip_accuracy = ")
    single = float(re.search(r"single view: (0\.\d{4})", tested).group(1))
    flip = float(re.search(r"with flip averaging: +(0\.\d{4})", tested).group(1))
    share = re.search(r"-> (\d+)% of its time", _stored_text("final_minutes = (time.perf_counter()")).group(1)
    wrong = re.search(r"([\d,]+) test images misclassified", _stored_text("wrong = np.flatnonzero(")).group(1)
    cells = [" ".join(_source(c).split()) for c in _cells() if c["cell_type"] == "markdown"]
    title = next(c for c in cells if c.startswith("# 05"))
    assert f"to {single:.1%}" in title
    assert f"**{single:.4f}** of the test images" in " ".join(cells) and f"{flip:.4f} with flip averaging" in " ".join(cells)
    summary = next(c for c in cells if "## What was tried and not adopted" in c)
    assert f"reached {single:.4f} single-view test accuracy ({flip:.4f} with flip averaging" in summary
    assert f"in {share}% of the article model's estimated training time" in summary
    assert f"In the stored run {wrong} test images are misclassified" in summary
    reached = single >= 0.88
    assert ("was not reached" in summary) != reached        # the summary says whether the target was met
    readme = " ".join((NOTEBOOK.parent.parent / "README.md").read_text().split())
    assert f"to {single:.1%} single view ({flip:.1%} with flip averaging" in readme
    assert f"in {share}% of its estimated training time" in readme
