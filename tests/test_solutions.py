"""The worked solutions compute what they claim: each number a solution prints or quotes is
recomputed here, independently of the solution's code.

Each solution notebook runs once (quick mode, in a kernel of this environment), and its values
are read out of the kernel. Solutions 01 and 02 use the whole data set in every mode, so their
printed numbers must also equal the stored run's, and the numbers their prose quotes must be the
ones computed. Solution 04 runs against the nearest-class-mean model of `notebook_kernel`, whose
probabilities are known in closed form.
"""
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from helpers import CLASS_NAMES, build_article_model, get_settings
from notebook_kernel import (execute_notebook, nearest_mean_probabilities, per_class_counts,
                             save_nearest_mean_model, text_of)

SOLUTIONS = Path(__file__).resolve().parent.parent / "notebooks" / "solutions"
SOL01 = SOLUTIONS / "01_data_loading_solutions.ipynb"
SOL02 = SOLUTIONS / "02_data_format_conversion_solutions.ipynb"
SOL03 = SOLUTIONS / "03_model_building_and_training_solutions.ipynb"
SOL04 = SOLUTIONS / "04_model_validation_solutions.ipynb"
NOTEBOOK05 = SOLUTIONS.parent / "05_going_further.ipynb"
CHANNELS = ["red", "green", "blue"]


def _markdown(path):
    return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")


def _stored_output(path, snippet):
    cells = [c for c in nbformat.read(path, as_version=4).cells
             if c.cell_type == "code" and snippet in c.source]
    assert len(cells) == 1, f"{len(cells)} code cells of {path.name} contain {snippet!r}"
    return text_of(cells[0].outputs)


def _channel_stats(x_uint8):
    """Mean and standard deviation of each channel of x / 255, from a histogram of the 256 pixel
    values (exact counts, float64 arithmetic): no NumPy mean or std over the images."""
    values = np.arange(256) / 255
    means, stds = [], []
    for c in range(3):
        counts = np.bincount(x_uint8[..., c].ravel(), minlength=256)
        mean = (counts * values).sum() / counts.sum()
        means.append(mean)
        stds.append(np.sqrt((counts * (values - mean) ** 2).sum() / counts.sum()))
    return np.array(means), np.array(stds)


# ------------------------------------------------------------------ solution 01
@pytest.fixture(scope="module")
def sol01(tmp_path_factory):
    read = {name: name for name in ["choice", "k", "images", "means", "image", "upside_down", "mirrored"]}
    return execute_notebook(SOL01, read, tmp_path_factory.mktemp("sol01"))


def test_sol01_sixteen_test_images_of_the_chosen_class(sol01, real_data):
    _, (x_test, y_test) = real_data
    assert sol01["choice"] == CLASS_NAMES[sol01["k"]]
    first_16 = [i for i, label in enumerate(y_test.ravel()) if label == sol01["k"]][:16]
    assert np.array_equal(sol01["images"], x_test[first_16])


def test_sol01_channel_means_and_the_dominant_channel(sol01, real_data):
    (x_train, _), _ = real_data
    expected = _channel_stats(x_train)[0] * 255
    np.testing.assert_allclose(sol01["means"], expected, rtol=1e-9)
    printed = sol01.output("means = x_train.mean(")
    for name, value in zip(CHANNELS, expected, strict=True):
        assert f"{name:5} {value:6.1f}\n" in printed
    assert f"dominant channel: {CHANNELS[int(np.argmax(expected))]}\n" in printed
    assert printed == _stored_output(SOL01, "means = x_train.mean(")      # same data in every mode
    assert CHANNELS[int(np.argmin(expected))] == "blue"
    assert "Blue comes out lowest" in _markdown(SOL01)


def test_sol01_flips_reverse_the_rows_or_the_columns(sol01, real_data):
    (x_train, _), _ = real_data
    image, upside_down, mirrored = sol01["image"], sol01["upside_down"], sol01["mirrored"]
    assert np.array_equal(image, x_train[0])
    for r in range(32):                                   # row r comes from row 31 - r
        assert np.array_equal(upside_down[r], image[31 - r])
    for c in range(32):                                   # column c from column 31 - c, colours kept
        assert np.array_equal(mirrored[:, c], image[:, 31 - c])
    # what the solution prints for the whole array: index 1 is the rows, index 2 the columns
    assert "x_train[:, ::-1] and x_train[:, :, ::-1]" in sol01.output("mirrored = ")
    assert np.array_equal(x_train[:1, ::-1][0], upside_down)
    assert np.array_equal(x_train[:1, :, ::-1][0], mirrored)


# ------------------------------------------------------------------ solution 02
@pytest.fixture(scope="module")
def sol02(tmp_path_factory):
    read = {"largest": "x_train.max()", "dark": "dark", "as_numbers": "as_numbers",
            "onehot_bytes": "y_train_onehot.nbytes",
            "losses": "[keras.ops.convert_to_numpy(v) for v in losses]",
            "mean": "mean", "std": "std", "table": "table",
            "mean_float32": "x_train_scaled.mean(axis=(0, 1, 2))"}
    return execute_notebook(SOL02, read, tmp_path_factory.mktemp("sol02"))


def test_sol02_the_brightest_pixels_and_the_dark_test_images(sol02, real_data):
    (x_train, _), (x_test, _) = real_data
    assert sol02["largest"] == x_train.max() == x_test.max() == 255   # "both sets contain a pixel of 255"
    brightest = np.array([img.max() for img in x_test])
    dark = x_test[brightest < 200]
    assert np.array_equal(sol02["dark"], dark)
    printed = sol02.output("dark = x_test[")
    assert "largest pixel: 255 in the training set, 255 in the test set\n" in printed
    assert (f"{len(dark)} test images have no pixel above 199; scaled by their own maximum "
            f"({dark.max()}), they would all look {255 / dark.max():.2f}× brighter" in printed)
    difference = float(printed.split("largest difference from x / 255: ")[1].split()[0])
    assert difference < 1e-7                      # the same scaling, up to float32 rounding
    assert printed == _stored_output(SOL02, "dark = x_test[")


def test_sol02_class_numbers_take_a_fortieth_of_the_memory_and_give_the_same_loss(sol02, real_data):
    (_, y_train), _ = real_data
    assert sol02["as_numbers"].dtype == np.uint8 and np.array_equal(sol02["as_numbers"], y_train.ravel())
    assert sol02["onehot_bytes"] == 50_000 * 10 * 4
    for loss in sol02["losses"]:               # uniform predictions: cross-entropy log(10) per image
        np.testing.assert_allclose(loss, np.full(5, np.log(10)), rtol=1e-6)
    printed = sol02.output("as_numbers = ")
    assert "one-hot float32: 2,000,000 bytes; class numbers uint8: 50,000 bytes (40× less)" in printed
    assert "same loss either way: True" in printed
    assert "a 40-fold saving, about 2 MB for the 50,000 training labels" in _markdown(SOL02)


def test_sol02_channel_statistics_and_the_standardised_range(sol02, real_data):
    (x_train, _), _ = real_data
    mean, std = _channel_stats(x_train)
    np.testing.assert_allclose(sol02["mean"], mean, rtol=1e-6)      # the solution sums float32 pixels
    np.testing.assert_allclose(sol02["std"], std, rtol=1e-6)
    table = sol02["table"]
    assert list(table.index) == CHANNELS
    lowest = np.array([x_train[..., c].min() for c in range(3)]) / 255      # what the data hold
    highest = np.array([x_train[..., c].max() for c in range(3)]) / 255
    np.testing.assert_allclose(table["standardised min"], (lowest - mean) / std, rtol=1e-6)
    np.testing.assert_allclose(table["standardised max"], (highest - mean) / std, rtol=1e-6)
    # the float32 mean stalls where a float32 total stops growing: 2**24 over 51.2 million values
    assert 50_000 * 32 * 32 == 51_200_000
    np.testing.assert_allclose(sol02["mean_float32"], 2 ** 24 / 51_200_000, atol=1e-3)
    assert np.all(np.abs(sol02["mean_float32"] - mean) > 0.1)
    assert sol02.output("mean = x_train_scaled") == _stored_output(SOL02, "mean = x_train_scaled")
    low, high = (lowest - mean) / std, (highest - mean) / std
    prose = _markdown(SOL02)
    assert (f"from about −{-low.min():.1f} (blue −{-low[2]:.1f}) to +{high.max():.1f}" in prose), \
        "the standardised range quoted in the prose is not the computed one"
    assert np.all(mean < 0.5) and np.all(high > -low) and int(np.argmin(mean)) == 2  # as the prose says


# ------------------------------------------------------------------ solution 03
VARIANTS = {"baseline": "article_model()", "whole_filters": "article_model(conv_axis=[0, 1, 2])",
            "pooling": "article_model(pooling=True)",
            "sgd": "article_model(optimizer=keras.optimizers.SGD(learning_rate=0.01))"}
TRAINED = {"whole_filters": "model", "pooling": "pooled", "sgd": "sgd"}


@pytest.fixture(scope="module")
def sol03(tmp_path_factory):
    read = {name: name for name in ["N_IMAGES", "EPOCHS", "results", "baseline", "summary", "seed_runs", "spread"]}
    read["kernels"] = "[keras.ops.convert_to_numpy(layer.kernel) for layer in model.layers[:2]]"
    read["pooled_dense_inputs"] = 'pooled.get_layer("dense_500").input.shape[-1]'
    read["pooled_params"] = "pooled.count_params()"
    for name, call in VARIANTS.items():
        read[f"layers_{name}"] = f"[layer.get_config() for layer in {call}.layers]"
        read[f"types_{name}"] = f"[type(layer).__name__ for layer in {call}.layers]"
        read[f"compiled_{name}"] = f"{call}.get_compile_config()"
    # the models the solution actually trained, not fresh ones built by the same calls
    for name, variable in TRAINED.items():
        read[f"trained_layers_{name}"] = f"[layer.get_config() for layer in {variable}.layers]"
        read[f"trained_compiled_{name}"] = f"{variable}.get_compile_config()"
    return execute_notebook(SOL03, read, tmp_path_factory.mktemp("sol03"))


def test_sol03_each_variant_differs_from_the_articles_model_in_one_place(sol03):
    article = build_article_model()
    assert sol03["layers_baseline"] == [layer.get_config() for layer in article.layers]
    assert sol03["types_baseline"] == [type(layer).__name__ for layer in article.layers]
    compiled, baseline = article.get_compile_config(), sol03["compiled_baseline"]
    assert (baseline["loss"], baseline["metrics"]) == (compiled["loss"], compiled["metrics"])

    def unnamed(optimizer):                       # Keras numbers optimizer names: adam, adam_5, ...
        return {**optimizer, "config": {k: v for k, v in optimizer["config"].items() if k != "name"}}

    assert unnamed(baseline["optimizer"]) == unnamed(compiled["optimizer"])
    # exercise 1: only the convolutions' constraint changes, to whole filters
    for got, base in zip(sol03["layers_whole_filters"], sol03["layers_baseline"], strict=True):
        if base["name"] in ("conv_1", "conv_2"):
            assert got["kernel_constraint"]["config"] == {"max_value": 3, "axis": [0, 1, 2]}
            got = {**got, "kernel_constraint": base["kernel_constraint"]}
        assert got == base
    # exercise 2: a 2x2 max-pooling after each convolution, nothing else
    assert sol03["types_pooling"] == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten",
                                      "Dense", "Dense"]
    assert [c for c in sol03["layers_pooling"] if "pool" not in c["name"]] == sol03["layers_baseline"]
    assert all(c["pool_size"] == (2, 2) for c in sol03["layers_pooling"] if "pool" in c["name"])
    # exercise 3: the same model with plain SGD at 0.01
    assert sol03["layers_sgd"] == sol03["layers_baseline"]
    optimizer = sol03["compiled_sgd"]["optimizer"]
    assert optimizer["class_name"] == "SGD"
    assert optimizer["config"]["learning_rate"] == pytest.approx(0.01)
    assert (optimizer["config"]["momentum"], optimizer["config"]["nesterov"]) == (0.0, False)
    # and each model the solution trained is the variant its heading names
    for name in TRAINED:
        assert sol03[f"trained_layers_{name}"] == sol03[f"layers_{name}"], name
        assert unnamed(sol03[f"trained_compiled_{name}"]["optimizer"]) == unnamed(sol03[f"compiled_{name}"]["optimizer"]), name


def test_sol03_whole_filter_norms_stay_within_the_limit_and_are_printed_right(sol03):
    printed = sol03.output("model = article_model(conv_axis=[0, 1, 2])")
    for name, kernel in zip(["conv_1", "conv_2"], sol03["kernels"], strict=True):
        norms = np.sqrt((kernel.astype(np.float64) ** 2).sum(axis=(0, 1, 2)))   # one per filter
        assert norms.shape == (32,) and norms.max() <= 3 + 1e-4
        assert f"{name}: largest whole-filter norm {norms.max():.2f} (limit 3)" in printed


def test_sol03_pooling_shrinks_dense_500_as_printed(sol03):
    inputs = (32 // 2 // 2) ** 2 * 32                          # two 2x2 poolings: 8 x 8 x 32
    assert sol03["pooled_dense_inputs"] == inputs == 2_048
    params = (3 * 3 * 3 * 32 + 32) + (3 * 3 * 32 * 32 + 32) + (inputs * 500 + 500) + (500 * 10 + 10)
    assert sol03["pooled_params"] == params
    assert (f"Dense(500) now takes {inputs:,} inputs: {inputs * 500 + 500:,} parameters (was 16,384,500); "
            f"whole model {params:,}" in sol03.output("pooled = article_model(pooling=True)"))
    flatten = 32 * 32 * 32
    assert (f"so `Dense(500)` sees 8·8·32 = {inputs:,} values instead of {flatten:,}: {flatten // inputs} "
            "times fewer weights") in " ".join(_markdown(SOL03).split())


def test_sol03_prose_quotes_the_stored_run():
    """Every number solution 03's text gives for the stored run is in a stored output above it."""
    prose = " ".join(_markdown(SOL03).split())
    summary = _stored_output(SOL03, "summary = pd.DataFrame(")
    rows = {name: [float(v) for v in re.findall(r"\d\.\d{3}", line)]
            for name, line in ((n, next(x for x in summary.splitlines() if x.startswith(n)))
                               for n in ("the article's model", "MaxNorm on whole filters",
                                         "max-pooling after each convolution", "SGD, learning rate 0.01"))}
    base, whole, pooled, sgd = (rows[n][1] for n in rows)        # validation accuracy, last epoch
    norms = re.findall(r"largest whole-filter norm (\d\.\d\d)", _stored_output(SOL03, "conv_axis=[0, 1, 2])\nresults"))
    assert f"the largest whole-filter norms at the end of training are {norms[0]} (`conv_1`) and {norms[1]} (`conv_2`)" in prose
    assert all(float(n) < 3 for n in norms)                      # "far below 3": the limit never acted
    assert f"moved the validation accuracy from the baseline's {base:.3f} to {whole:.3f}" in prose
    assert f"pooling reached a validation accuracy of {pooled:.3f} against the baseline's {base:.3f}: a difference of {pooled - base:.3f}" in prose
    assert f"SGD reached a validation accuracy of {sgd:.3f} after the 2 epochs, against Adam's {base:.3f}" in prose
    pooled_params = re.search(r"whole model ([\d,]+)", _stored_output(SOL03, "pooled = article_model(pooling=True)")).group(1)
    assert f"({pooled_params} parameters against 16,399,654)" in prose
    seeds = re.search(r"three seeds: (\d\.\d{3}), (\d\.\d{3}), (\d\.\d{3}); spread \(largest - smallest\) (\d\.\d{3})",
                      _stored_output(SOL03, "results = {\"the article's model\"")).groups()
    assert f"the seed alone moved the unchanged model ({seeds[0]}, {seeds[1]} and {seeds[2]}, printed above)" in prose
    assert f"a difference of {pooled - base:.3f}, well within the {seeds[3]} by which the seed alone moved" in prose
    assert abs(pooled - base) < float(seeds[3])                   # "well within"
    assert f"the difference it made here, {abs(whole - base):.3f}, is smaller than the {seeds[3]}" in prose
    assert abs(whole - base) < float(seeds[3])
    times = [int(t) for t in re.findall(r"trained in (\d+) s", "\n".join(
        text_of(c.outputs) for c in nbformat.read(SOL03, as_version=4).cells if c.cell_type == "code"))]
    pooled_s = int(re.search(r"trained in (\d+) s", _stored_output(SOL03, "results[\"max-pooling after each convolution\"]")).group(1))
    others = [t for t in times if t != pooled_s]
    assert f"it trained in {pooled_s} s against {min(others)} to {max(others)} s for the others" in prose


def test_sol03_the_summary_is_each_variants_last_epoch(sol03):
    results, summary = sol03["results"], sol03["summary"]
    assert (sol03["N_IMAGES"], sol03["EPOCHS"]) == (1_000, 1)                    # quick mode's budget
    assert list(results) == ["the article's model", "MaxNorm on whole filters",
                             "max-pooling after each convolution", "SGD, learning rate 0.01"]
    assert list(summary.index) == list(results)
    for name, history in results.items():
        assert all(len(values) == sol03["EPOCHS"] for values in history.values()), name
        assert summary.loc[name, "training accuracy"] == history["accuracy"][-1]
        assert summary.loc[name, "validation accuracy"] == history["val_accuracy"][-1]
        assert summary.loc[name, "validation loss"] == history["val_loss"][-1]
    assert sol03["baseline"] == results["the article's model"]["val_accuracy"][-1]
    # the seed spread: the baseline and the same model from two more seeds, at the same budget
    runs = sol03["seed_runs"]
    assert len(runs) == 3 and runs[0] == sol03["baseline"]
    assert sol03["spread"] == pytest.approx(max(runs) - min(runs))
    assert ("three seeds: " + ", ".join(f"{a:.3f}" for a in runs) + f"; spread (largest - smallest) {max(runs) - min(runs):.3f}"
            in sol03.output("results = {\"the article's model\""))


# ------------------------------------------------------------------ solution 04
@pytest.fixture(scope="module")
def sol04(real_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sol04")
    read = {name: name for name in ["probs", "y_true", "y_pred", "top", "cut", "unsure", "y_naive",
                                    "change", "f1", "gain", "predicted", "N_IMAGES", "EPOCHS", "SEEDS"]}
    read["types_pooling"] = "[type(layer).__name__ for layer in build(True).layers]"
    read["types_plain"] = "[type(layer).__name__ for layer in build(False).layers]"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIFAR10_ARTIFACTS", str(folder))
        weights, bias = save_nearest_mean_model(real_data, get_settings(), {
            "loss": [2.0, 1.8], "accuracy": [0.2, 0.3], "val_loss": [1.9, 1.85], "val_accuracy": [0.25, 0.3]})
        executed = execute_notebook(SOL04, read, folder)
    return executed, weights, bias


def test_sol04_accuracy_on_the_least_confident_tenth(sol04, real_data):
    nb, weights, bias = sol04
    _, (x_test, y_test) = real_data
    np.testing.assert_allclose(nb["probs"], nearest_mean_probabilities(x_test, weights, bias), atol=1e-4)
    top, right = nb["probs"].max(axis=1), nb["probs"].argmax(axis=1) == y_test.ravel()
    ranked = np.sort(top)                       # the 10% quantile, interpolated between neighbours
    position = 0.10 * (len(top) - 1)
    below = int(position)
    cut = ranked[below] + (position - below) * (ranked[below + 1] - ranked[below])
    assert nb["cut"] == pytest.approx(cut, rel=1e-6)
    unsure = top <= cut
    assert np.array_equal(nb["unsure"], unsure) and unsure.sum() == 1_000
    printed = nb.output("cut = np.quantile(")
    assert (f"least confident 10%: top probability at most {cut:.2f}; accuracy "
            f"{right[unsure].mean():.3f} on {unsure.sum():,} images" in printed)
    assert f"the other 90%: accuracy {right[~unsure].mean():.3f} on {(~unsure).sum():,} images" in printed
    assert right[unsure].mean() < right[~unsure].mean()     # what the solution's prose concludes


def test_sol04_the_report_under_threshold_then_argmax(sol04):
    nb = sol04[0]
    probs, y_true = nb["probs"], nb["y_true"]
    naive = np.where((probs < 0.5).all(axis=1), 0, probs.argmax(axis=1))
    assert np.array_equal(nb["y_naive"], naive)

    def airplane(y_pred):
        _, precision, recall, specificity, f1, _ = per_class_counts(y_true, y_pred)
        geo = np.sqrt(recall * specificity)
        iba = (1 + 0.1 * (recall - specificity)) * geo ** 2
        return np.array([precision[0], recall[0], specificity[0], f1[0], geo[0], iba[0]])

    expected = airplane(naive) - airplane(probs.argmax(axis=1))
    assert list(nb["change"].index) == ["pre", "rec", "spe", "f1", "geo", "iba"]
    np.testing.assert_allclose(nb["change"].to_numpy(dtype=float), expected, atol=1e-12)
    # what the prose says happens to class 0: precision falls, recall rises, specificity drops
    assert expected[0] < 0 < expected[1] and expected[2] < 0


def test_sol04_per_class_f1_with_and_without_pooling(sol04):
    nb = sol04[0]
    y_true, predicted, f1, gain = nb["y_true"], nb["predicted"], nb["f1"], nb["gain"]
    seeds = nb["SEEDS"]
    assert (nb["N_IMAGES"], nb["EPOCHS"]) == (1_000, 1) and len(seeds) == 3
    assert nb["types_plain"] == ["Conv2D", "Conv2D", "Flatten", "Dense", "Dense"]
    assert nb["types_pooling"] == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten",
                                   "Dense", "Dense"]
    assert list(f1.columns) == [(m, s) for m in ("without pooling", "with pooling") for s in seeds]
    np.testing.assert_allclose(f1["with pooling", seeds[-1]], per_class_counts(y_true, predicted)[4])  # last trained
    assert list(gain.index) == list(CLASS_NAMES)
    change = f1["with pooling"] - f1["without pooling"]          # paired by seed
    np.testing.assert_allclose(gain["change, mean"], change.mean(axis=1))
    np.testing.assert_allclose(gain["sd of change"], change.std(axis=1, ddof=1))
    np.testing.assert_allclose(gain[f"change, seed {seeds[0]} alone"], change[seeds[0]])
    np.testing.assert_allclose(gain["with pooling"], f1["with pooling"].mean(axis=1))
    printed = nb.output("f1 = pd.DataFrame(")
    one = change[seeds[0]]
    assert (f"seed {seeds[0]} alone: largest gain {one.idxmax()} ({one.max():+.2f}); smallest "
            f"{one.idxmin()} ({one.min():+.2f})" in printed)
    same_sign = (np.sign(change).nunique(axis=1) == 1)
    clear = [c for c in CLASS_NAMES if same_sign[c] and abs(change.loc[c].mean()) > 2 * change.loc[c].std(ddof=1)]
    assert ("beyond the spread (the same sign for all three seeds, mean more than 2 sd): "
            + (", ".join(f"{c} {change.loc[c].mean():+.2f}" for c in clear) or "none")) in printed
    trained = nb.output("SEEDS = [")
    assert f"with pooling, seed {seeds[-1]}: test accuracy {(predicted == y_true).mean():.3f}" in trained
    assert trained.count("test accuracy") == 6


def test_sol04_prose_quotes_the_stored_run():
    """What solution 04's text says of the stored run is what the stored outputs show."""
    prose = " ".join(_markdown(SOL04).split())
    gains = _stored_output(SOL04, "f1 = pd.DataFrame(")
    seed, best, up, worst, down = re.search(
        r"seed (\d+) alone: largest gain (\w+) \(\+(\d\.\d\d)\); smallest (\w+) \(-(\d\.\d\d)\)", gains).groups()
    assert f"With seed {seed} alone, {best}'s F1 rose most (+{up}) and {worst}'s fell most (−{down})" in prose
    trained = _stored_output(SOL04, "SEEDS = [")
    plain = re.findall(r"without pooling, seed \d+: test accuracy (\d\.\d{3})", trained)
    pooled = re.findall(r"with pooling, seed \d+: test accuracy (\d\.\d{3})", trained)
    assert f"the test accuracy moved from {plain[0]} to {pooled[0]}" in prose
    assert f"without pooling {plain[0]}, {plain[1]} and {plain[2]}, with pooling {pooled[0]}, {pooled[1]} and {pooled[2]}" in prose
    clear = re.search(r"mean more than 2 sd\): (.*)", gains).group(1)
    assert clear == "horse +0.03, ship +0.06"                   # the two classes the prose names
    assert "ship (+0.06, sd 0.02) and horse (+0.03, sd 0.01)" in prose
    assert "**So, no:** a change of 0.05 in one class from one seed each is not to be trusted" in prose
    unsure, rest = re.findall(r"accuracy (\d\.\d{3}) on", _stored_output(SOL04, "cut = np.quantile("))
    assert f"(the full-mode model of notebook 03) {unsure} against {rest}" in prose
    change = dict(line.split() for line in _stored_output(SOL04, "change = (").splitlines()
                  if line.split() and line.split()[0] in ("pre", "rec", "spe", "f1", "geo", "iba"))
    change = {key: float(value) for key, value in change.items()}
    assert (f"precision falls most (by {-change['pre']:.2f} in the stored run), recall rises (by "
            f"{change['rec']:.2f}), and specificity drops (by {-change['spe']:.2f})") in prose
    assert min(change, key=change.get) == "pre" and change["rec"] > 0 > change["spe"]
    assert "F1 falls with precision" in prose and change["f1"] < 0
    assert f"The geometric mean and IBA fall less (by {-change['geo']:.2f} and {-change['iba']:.2f})" in prose
    assert change["pre"] < change["geo"] < 0 and change["pre"] < change["iba"] < 0
