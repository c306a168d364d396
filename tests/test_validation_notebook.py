"""Notebook 04 computes what it teaches: each number it shows is recomputed here, independently.

The notebook runs once (quick mode) against a model whose predictions this test controls: a
nearest-class-mean classifier on raw pixels (Flatten -> Dense(10, softmax) with weights set by
hand), saved where notebook 03 leaves its model, with a history whose best epochs differ by
metric. Its probabilities are known in closed form, spread (about half the test images have no
class at or above 0.5) and its confusions are lopsided (rows and columns of the confusion matrix
differ), so a notebook that decodes, counts, ranks or transposes wrongly gives different numbers.
Every check recomputes from the kernel's own `probs` with NumPy or scikit-learn, not with the
notebook's code.
"""
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from helpers import CLASS_NAMES, get_settings
from notebook_kernel import (execute_notebook, nearest_mean_probabilities, per_class_counts,
                             save_nearest_mean_model, text_of)

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "04_model_validation.ipynb"
HISTORY = {"loss": [2.0, 1.6, 1.4], "accuracy": [0.25, 0.40, 0.50],
           "val_loss": [1.9, 1.7, 1.8], "val_accuracy": [0.30, 0.38, 0.41]}   # best: epoch 2
READ = ["probs", "y_true", "y_pred", "top", "above", "no_class", "y_naive", "p_arg", "r_arg",
        "p_naive", "r_naive", "decoding", "report", "order", "per_class_auc", "micro", "macro",
        "counts", "row_share", "pairs", "wrong", "worst", "titles", "i", "scores", "best_epoch"]


@pytest.fixture(scope="module")
def run(real_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("validation-notebook")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIFAR10_ARTIFACTS", str(folder))
        settings = get_settings()
        weights, bias = save_nearest_mean_model(real_data, settings, HISTORY)
        executed = execute_notebook(NOTEBOOK, {name: name for name in READ}, folder)
    return executed, weights, bias, settings


@pytest.fixture(scope="module")
def nb(run):
    return run[0]


def _confusion(y_true, y_pred):
    return per_class_counts(y_true, y_pred)[0]


def _per_class(y_true, y_pred):
    return per_class_counts(y_true, y_pred)[1:]


def test_the_probabilities_are_the_saved_models_and_each_accuracy_its_own_set(run, real_data):
    """probs are the saved model's outputs on the test set, and the accuracy table measures the
    training, validation and test images it names (quick mode: first 3,000, last 2,000, test)."""
    nb, weights, bias, settings = run
    (x_train, y_train), (x_test, y_test) = real_data
    expected = nearest_mean_probabilities(x_test, weights, bias)
    np.testing.assert_allclose(nb["probs"], expected, atol=1e-4)   # float32 vs float64
    assert np.array_equal(nb["y_true"], y_test.ravel())
    assert np.array_equal(nb["y_pred"], nb["probs"].argmax(axis=1))
    assert np.array_equal(nb["top"], nb["probs"].max(axis=1))
    sets = {"training": (x_train[:settings.n_train], y_train[:settings.n_train]),
            "validation": (x_train[-settings.n_val:], y_train[-settings.n_val:]),
            "test": (x_test, y_test)}
    for name, (x, y) in sets.items():
        accuracy = (nearest_mean_probabilities(x, weights, bias).argmax(axis=1) == y.ravel()).mean()
        assert nb["scores"][name]["accuracy"] == pytest.approx(accuracy, abs=2e-3), name
    assert nb["best_epoch"] == 2                     # lowest val_loss; not val_accuracy's 3
    assert "the checkpoint holds epoch 2 of 3 (lowest validation loss)" in nb.output("best_epoch =")


def test_threshold_demonstration_counts_what_its_text_says(nb):
    """'Rows with no class at or above 0.5', every one decoded as airplane by
    threshold-then-argmax: counted here from the probabilities, and as printed."""
    probs, y_true = nb["probs"], nb["y_true"]
    undecided = (probs < 0.5).all(axis=1)
    assert 1_000 < undecided.sum() < 9_000               # the model leaves many images undecided
    assert np.array_equal(nb["no_class"], undecided)
    assert np.array_equal(nb["above"], (probs >= 0.5).astype(int))
    expected_naive = np.where(undecided, 0, probs.argmax(axis=1))
    assert np.array_equal(nb["y_naive"], expected_naive)
    n = int(undecided.sum())
    printed = nb.output("above = (probs >= 0.5)")
    assert f"rows with no class at or above 0.5: {n:,}\n" in printed
    assert f"decoded as 'airplane' by threshold-then-argmax: {n:,}\n" in printed
    assert f"accuracy with threshold-then-argmax: {(expected_naive == y_true).mean():.4f}" in printed
    assert (f"images whose top probability is below 0.5: {n:,} of 10,000"
            in nb.output("probs = model.predict("))


def test_the_decoding_table_compares_argmax_with_threshold_then_argmax(nb):
    y_true, probs = nb["y_true"], nb["probs"]
    naive = np.where((probs < 0.5).all(axis=1), 0, probs.argmax(axis=1))
    for decoded, p, r in [(probs.argmax(axis=1), "p_arg", "r_arg"), (naive, "p_naive", "r_naive")]:
        precision, recall, *_ = _per_class(y_true, decoded)
        np.testing.assert_allclose(nb[p], precision)
        np.testing.assert_allclose(nb[r], recall)
    table = nb["decoding"]
    assert list(table.index) == list(CLASS_NAMES)
    np.testing.assert_allclose(table["recall (≥0.5, then argmax)"], nb["r_naive"])
    np.testing.assert_allclose(table["precision (argmax)"], nb["p_arg"])


def test_report_precision_recall_f1_equal_an_independent_count(nb):
    """imbalanced-learn's table, row by row: precision, recall, specificity, F1, geometric mean,
    IBA (alpha 0.1) and support, from a confusion matrix counted here."""
    precision, recall, specificity, f1, support = _per_class(nb["y_true"], nb["y_pred"])
    report = nb["report"]
    assert list(report.index) == list(CLASS_NAMES)
    np.testing.assert_allclose(report["precision"], precision, atol=1e-12)
    np.testing.assert_allclose(report["recall"], recall, atol=1e-12)
    np.testing.assert_allclose(report["specificity"], specificity, atol=1e-12)
    np.testing.assert_allclose(report["F1"], f1, atol=1e-12)
    geo = np.sqrt(recall * specificity)
    np.testing.assert_allclose(report["geometric mean"], geo, atol=1e-12)
    np.testing.assert_allclose(report["IBA"], (1 + 0.1 * (recall - specificity)) * geo ** 2, atol=1e-12)
    assert report["support"].tolist() == support.tolist() == [1_000] * 10
    weakest, strongest = CLASS_NAMES[int(np.argmin(f1))], CLASS_NAMES[int(np.argmax(f1))]
    assert nb["order"].index[0] == weakest and nb["order"].index[-1] == strongest
    assert (f"weakest: {weakest} (F1 {f1.min():.2f}); strongest: {strongest} (F1 {f1.max():.2f})"
            in nb.output('order = report["F1"].sort_values()'))


def test_auc_per_class_and_averages_equal_roc_auc_score(nb):
    """Per class: scikit-learn's roc_auc_score of one class against the rest. Micro: all
    (image, class) pairs pooled. Macro: the mean of the ten."""
    probs, y_true = nb["probs"], nb["y_true"]
    onehot = np.eye(10)[y_true]
    expected = {name: roc_auc_score(y_true == k, probs[:, k]) for k, name in enumerate(CLASS_NAMES)}
    assert list(nb["per_class_auc"]) == list(CLASS_NAMES)
    for name in CLASS_NAMES:
        assert nb["per_class_auc"][name] == pytest.approx(expected[name], abs=1e-9), name
    assert all(0.5 < value < 1 for value in expected.values())   # better than chance, not perfect
    micro = roc_auc_score(onehot.ravel(), probs.ravel())
    macro = np.mean(list(expected.values()))
    assert nb["micro"] == pytest.approx(micro, abs=1e-9)
    assert nb["macro"] == pytest.approx(macro, abs=1e-9)
    lowest = min(expected, key=expected.get)
    assert (f"micro-average AUC {micro:.3f}, macro-average AUC {macro:.3f}, lowest {lowest} "
            f"{expected[lowest]:.3f}" in nb.output("per_class_auc = {}"))


def test_confusion_matrix_rows_are_the_true_classes(nb):
    """Rows are true classes (each sums to that class's 1,000 test images), columns predictions;
    the table of confused pairs reads 'A taken for B' from row A, column B."""
    y_true, y_pred = nb["y_true"], nb["y_pred"]
    expected = _confusion(y_true, y_pred)
    assert not np.array_equal(expected, expected.T)            # this model's confusions are lopsided
    assert np.array_equal(nb["counts"], expected)
    assert nb["counts"].sum(axis=1).tolist() == [1_000] * 10
    np.testing.assert_allclose(nb["row_share"], expected / 1_000)
    pairs = nb["pairs"]
    totals = sorted((expected[a, b] + expected[b, a] for a in range(10) for b in range(a + 1, 10)),
                    reverse=True)
    assert pairs["mistakes, both ways"].tolist() == totals[:6]
    for _, row in pairs.iterrows():
        a, b = CLASS_NAMES.index(row["class A"]), CLASS_NAMES.index(row["class B"])
        assert (row["A taken for B"], row["B taken for A"]) == (expected[a, b], expected[b, a])
        assert row["mistakes, both ways"] == expected[a, b] + expected[b, a]


def test_confident_mistakes_are_the_most_confident_wrong_answers_in_falling_order(nb):
    probs, y_true = nb["probs"], nb["y_true"]
    y_pred, top = probs.argmax(axis=1), probs.max(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    assert np.array_equal(nb["wrong"], wrong)
    worst = nb["worst"]
    assert len(worst) == 24 and set(worst) <= set(wrong)
    assert np.all(np.diff(top[worst]) <= 0), "not in falling order of confidence"
    np.testing.assert_array_equal(top[worst], np.sort(top[wrong])[::-1][:24])
    assert top[worst[0]] > 0.99 and top[worst[-1]] > top[wrong].mean()
    assert nb["titles"] == [f"{CLASS_NAMES[y_true[i]]} → {CLASS_NAMES[y_pred[i]]}\n{top[i]:.0%}"
                            for i in worst]
    assert (f"{len(wrong):,} test images misclassified; {(top[wrong] > 0.9).sum():,} of them with "
            "over 90% confidence" in nb.output("wrong = np.flatnonzero("))
    near = wrong[np.argmax(probs[wrong, y_true[wrong]])]         # the near miss
    assert nb["i"] == near
    assert re.search(rf"true: {CLASS_NAMES[y_true[near]]} \(\d+\.\d%\), predicted: "
                     rf"{CLASS_NAMES[y_pred[near]]} \(\d+\.\d%\)", nb.output("the highest probability for the true class"))


def _stored():
    """The stored notebook (the full run readers see): its prose, and a cell's text output."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    prose = " ".join(" ".join(c.source for c in nb.cells if c.cell_type == "markdown").split())

    def output(snippet):
        cells = [c for c in nb.cells if c.cell_type == "code" and snippet in c.source]
        assert len(cells) == 1, snippet
        return text_of(cells[0].outputs)
    return prose, output


def _table(text):
    """A pandas table as printed (possibly wrapped into blocks): {row label: [cell, ...]}."""
    rows = {}
    for block in text.strip().split("\n\n"):
        for line in block.splitlines()[1:]:
            label, *cells = line.split()
            rows.setdefault(label, []).extend(cells)
    return rows


def test_the_prose_quotes_the_stored_run():
    """Where the text discusses 'the stored run', its numbers are the stored outputs' numbers, so
    a re-run of the notebook (make notebooks) cannot leave the prose quoting an older run."""
    prose, output = _stored()
    accuracy = {row: float(value) for row, value in
                re.findall(r"^(training|validation|test) accuracy\s+([\d.]+)", output("scores = {}"), re.M)}
    epoch, epochs = re.search(r"holds epoch (\d+) of (\d+)", output("scores = {}")).groups()
    assert f"the checkpoint is epoch {epoch} of {epochs}" in prose
    assert (f"classifies {accuracy['test']:.3f} of the test images correctly, a little less than the "
            f"validation images that chose it ({accuracy['validation']:.3f}), and "
            f"{accuracy['training']:.3f} of the training images") in prose
    assert f"the gap of {accuracy['training'] - accuracy['test']:.3f} between training and test" in prose

    decoded = output("probs = model.predict(")
    undecided = int(re.search(r"below 0.5: ([\d,]+) of", decoded).group(1).replace(",", ""))
    argmax = float(re.search(r"accuracy with argmax: ([\d.]+)", decoded).group(1))
    naive = float(re.search(r"accuracy with threshold-then-argmax: ([\d.]+)", output("above = (probs >= 0.5)")).group(1))
    assert f"for {undecided:,} of the 10,000 test images ({undecided / 100:.0f}%)" in prose
    assert f"right for {argmax:.2%} of all test images" in prose
    assert f"all {undecided:,} undecided images land on airplane" in prose
    assert f"Overall accuracy drops from {argmax:.4f} to {naive:.4f}" in prose

    table = _table(output("decoding = pd.DataFrame("))       # precision argmax, naive; recall argmax, naive
    p, p_naive, r, r_naive = table["airplane"]
    assert f"its precision is {p} and its recall {r} with argmax" in prose
    assert f"its recall rises to {r_naive} and its precision collapses to {p_naive}" in prose
    assert (f"cat falls from {table['cat'][2]} to {table['cat'][3]}, dog from {table['dog'][2]} to "
            f"{table['dog'][3]}") in prose

    report = _table(output("report = report_table("))  # precision recall specificity F1 geo IBA support
    by_f1 = sorted(report, key=lambda name: float(report[name][3]))
    f1 = {name: report[name][3] for name in report}
    weakest, second, strongest = by_f1[0], by_f1[1], by_f1[::-1][:3]
    best = (f"the strongest is *{strongest[0]}* ({f1[strongest[0]]}), then *{strongest[1]}* ({f1[strongest[1]]}) "
            f"and *{strongest[2]}* ({f1[strongest[2]]})")
    if f1[weakest] == f1[second]:                            # equal to two decimals: the prose calls it a tie
        assert (f"*{weakest}* and *{second}* tie as the weakest classes (F1 {f1[weakest]} each, to two decimals; "
                f"the line above the chart names {weakest}") in prose
        assert best in prose
    else:
        assert f"the weakest class is *{weakest}* (F1 {f1[weakest]}), followed by *{second}* ({f1[second]}); " + best in prose
    assert f"{weakest.capitalize()} has fair precision ({report[weakest][0]}) but low recall ({report[weakest][1]})" in prose
    reverse = max(report, key=lambda name: float(report[name][1]) - float(report[name][0]))   # recall far above precision
    assert f"*{reverse.capitalize()}* is the reverse (precision {report[reverse][0]}, recall {report[reverse][1]})" in prose
    specificity = sorted(float(report[name][2]) for name in report)
    assert f"Specificity is high for every class ({specificity[0]:.2f} to {specificity[-1]:.2f} in the stored run)" in prose

    micro, macro, lowest, lowest_auc = re.search(r"micro-average AUC ([\d.]+), macro-average AUC ([\d.]+), "
                                                 r"lowest (\w+) ([\d.]+)", output("per_class_auc = {}")).groups()
    averages = f"are both {micro}" if micro == macro else f"are {micro} and {macro}"
    assert (f"every class has an AUC of at least {lowest_auc} ({lowest}, the lowest), and the micro- and "
            f"macro-averages {averages}, while accuracy is {accuracy['test']:.3f}") in prose

    pairs = [line.split()[1:] for line in output("off_diagonal = ").strip().splitlines()[1:]]
    total, a, b, a_as_b, b_as_a = pairs[0]
    assert (f"the most confused pair is *{a}* and *{b}*: {total} mistakes between them, {a_as_b} {a}s taken "
            f"for {b}s and {b_as_a} {b}s for {a}s") in prose
    for total, a, b, _, _ in pairs[1:]:
        assert f"*{a}* and *{b}* ({total}" in prose, (a, b, total)

    wrong, confident = re.search(r"([\d,]+) test images misclassified; ([\d,]+) of them",
                                 output("wrong = np.flatnonzero(")).groups()
    assert f"{wrong} test images are misclassified, {confident} of them with more than 90% confidence" in prose
    true, p_true, predicted, p_predicted = re.search(r"true: (\w+) \(([\d.]+%)\), predicted: (\w+) \(([\d.]+%)\)",
                                                     output("the highest probability for the true class")).groups()
    article = "an" if true[0] in "aeiou" else "a"
    assert f"the near miss is {article} {true} that the model gave {p_true} {true} and {p_predicted} {predicted}" in prose
