"""Mutation check: would the tests notice a wrong series?

    python scripts/mutants.py              # every mutant (make mutants)
    python scripts/mutants.py 3 7 27       # only mutants 3, 7 and 27
    python scripts/mutants.py --list       # the list, without running anything
    python scripts/mutants.py --timeout 300

Each mutant is one deliberate bug, a line changed the way a hurried edit could change it: in
helpers/ (a .py file), or in a code cell of a notebook or a solution notebook (.ipynb: the
change must match exactly one code cell, once). For each, the repository is copied to a scratch
folder, the bug is applied there (the working tree is never touched), and only the tests that
guard that code run against the copy, each run under a time limit.

Verdicts. A mutant is *caught* only when pytest exits 1 (tests ran and at least one failed)
and the test named as its catcher is among those that failed. Anything else is reported as
what it is: SURVIVED (exit 0), TIMEOUT (killed at the limit), ERROR (exit 2-5: interrupted,
internal error, usage error, no tests collected; a collection error is no catch), OTHER TEST
(a test failed, but not the one named to catch it: update the list), or DOES NOT APPLY (its
text is no longer in the file). The script prints a table and exits non-zero unless the
unmutated copy passes the same tests and every mutant is caught.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TIMEOUT_S = 900            # per pytest run; notebook 04's contract tests take about a minute here


@dataclass(frozen=True)
class Mutant:
    what: str
    file: str              # a .py file, or a notebook: then `old` must lie in one code cell
    old: str
    new: str
    tests: tuple           # what pytest runs against the mutant (files or node ids)
    catcher: str           # the test meant to catch it: "file::test" or a test's name; a
                           # parametrised test matches with any parameters unless they are given


MODEL, CONTRACT, DATA, ARTIFACTS = "tests/test_model.py", "tests/test_contract.py", "tests/test_data.py", "tests/test_artifacts.py"
SETTINGS, FURTHER, PROGRESS, CONVERSION = "tests/test_settings.py", "tests/test_further.py", "tests/test_progress.py", "tests/test_conversion.py"
PLOTS = "tests/test_plots.py"
NB04, VALIDATION = "notebooks/04_model_validation.ipynb", "tests/test_validation_notebook.py"
SOL01, SOL02 = "notebooks/solutions/01_data_loading_solutions.ipynb", "notebooks/solutions/02_data_format_conversion_solutions.ipynb"
SOL03, SOL04 = "notebooks/solutions/03_model_building_and_training_solutions.ipynb", "notebooks/solutions/04_model_validation_solutions.ipynb"
SOLUTIONS = "tests/test_solutions.py"
NB05, FURTHER_NB = "notebooks/05_going_further.ipynb", "tests/test_further_notebook.py"
EXERCISES, EXERCISES_TEST = "helpers/exercises.py", "tests/test_exercises.py"

MUTANTS = [
    # the five a review found surviving
    Mutant("MaxNorm(3) removed from dense_500", "helpers/model.py",
           'keras.layers.Dense(500, activation="relu", kernel_constraint=max_norm,',
           'keras.layers.Dense(500, activation="relu",', (MODEL, CONTRACT),
           "test_every_layer_of_the_articles_model"),
    Mutant("dense_500 activation ReLU -> tanh", "helpers/model.py",
           'keras.layers.Dense(500, activation="relu"', 'keras.layers.Dense(500, activation="tanh"',
           (MODEL, CONTRACT),
           "test_every_layer_of_the_articles_model"),
    Mutant("validation labels no longer those of the validation images", "helpers/settings.py",
           "(x[-settings.n_val:], y[-settings.n_val:])", "(x[-settings.n_val:], y[:settings.n_val])",
           (SETTINGS, CONTRACT),
           "test_every_split_keeps_labels_with_their_images[class]"),
    Mutant("unpickler allows any numpy.* global", "helpers/data.py",
           "if (module, name) not in _ALLOWED_GLOBALS:",
           'if (module, name) not in _ALLOWED_GLOBALS and not module.startswith("numpy"):',
           (DATA, CONTRACT),
           "test_a_batch_that_calls_numpy_load_is_refused_end_to_end"),
    Mutant("load_best_model accepts the wrong number of outputs", "helpers/artifacts.py",
           "tuple(model.input_shape) != expected_in or tuple(model.output_shape) != expected_out",
           "tuple(model.input_shape) != expected_in", (ARTIFACTS, CONTRACT),
           "test_a_model_with_the_wrong_number_of_classes_is_refused[100]"),
    # more of the same kind
    Mutant("MaxNorm(3) -> MaxNorm(4)", "helpers/model.py", "MaxNorm(3)  #", "MaxNorm(4)  #", (MODEL, CONTRACT),
           "test_every_layer_of_the_articles_model"),
    Mutant("MaxNorm on whole filters (axis=[0, 1, 2]) instead of the article's default axis",
           "helpers/model.py", "MaxNorm(3)  #", "MaxNorm(3, axis=[0, 1, 2])  #", (MODEL, CONTRACT),
           "test_every_layer_of_the_articles_model"),
    Mutant("conv_2 padding 'same' -> 'valid'", "helpers/model.py",
           'keras.layers.Conv2D(32, (3, 3), padding="same", activation="relu",\n                                         kernel_constraint=conv_norm, name=f"conv_{i}")',
           'keras.layers.Conv2D(32, (3, 3), padding="same" if i == 1 else "valid", activation="relu",\n                                         kernel_constraint=conv_norm, name=f"conv_{i}")',
           (MODEL, CONTRACT),
           "test_every_layer_of_the_articles_model"),
    Mutant("output activation softmax -> sigmoid", "helpers/model.py",
           'activation="softmax", name="softmax_out"', 'activation="sigmoid", name="softmax_out"',
           (MODEL, CONTRACT),
           "test_every_layer_of_the_articles_model"),
    Mutant("optimizer Adam -> RMSprop", "helpers/model.py", 'optimizer="adam"', 'optimizer="rmsprop"',
           (MODEL, CONTRACT),
           "test_the_articles_model_is_compiled_with_adams_defaults_cross_entropy_and_accuracy"),
    Mutant("loss categorical cross-entropy -> mean squared error", "helpers/model.py",
           'loss="categorical_crossentropy"', 'loss="mean_squared_error"', (MODEL, CONTRACT),
           "test_the_articles_model_is_compiled_with_adams_defaults_cross_entropy_and_accuracy"),
    Mutant("no accuracy metric", "helpers/model.py", 'metrics=["accuracy"]', "metrics=[]", (MODEL, CONTRACT),
           "test_the_articles_model_is_compiled_with_adams_defaults_cross_entropy_and_accuracy"),
    Mutant("pixels scaled by the set's own maximum (the article's bug)", "helpers/data.py",
           "x /= 255.0", "x /= x.max()", (CONVERSION,),
           "test_scaling_does_not_depend_on_the_set_maximum"),
    Mutant("rows and columns swapped when unpacking a batch", "helpers/data.py",
           ".transpose(0, 2, 3, 1)", ".transpose(0, 3, 2, 1)", (DATA, CONTRACT),
           "test_loaded_labels_belong_to_their_images"),
    Mutant("labels outside 0-9 accepted", "helpers/data.py",
           "bad = labels[(labels < 0) | (labels >= NUM_CLASSES)]", "bad = labels[labels < 0]", (DATA,),
           "test_labels_outside_0_to_9"),
    Mutant("checkpoint written in place, not through a temporary file", "helpers/artifacts.py",
           "        model.save(tmp)\n", "        model.save(path)\n", (ARTIFACTS,),
           "test_an_interrupted_save_leaves_the_previous_checkpoint_usable"),
    Mutant("checkpoint keeps the worst epoch", "helpers/artifacts.py", "if value < self.best:",
           "if value > self.best or self.best == math.inf:", (ARTIFACTS, MODEL),
           "test_the_checkpoint_holds_the_epoch_with_the_lowest_validation_loss"),
    Mutant("quick mode writes into the full-mode folder", "helpers/settings.py",
           'artifacts=base / "quick")', "artifacts=base)", (SETTINGS, ARTIFACTS),
           "test_quick_mode_never_shares_a_folder_with_full_mode"),
    Mutant("class mode trains for 10 epochs, not a lesson's one", "helpers/settings.py",
           'epochs=1, batch_size=32, seed=SEED, artifacts=base / "class")',
           'epochs=10, batch_size=32, seed=SEED, artifacts=base / "class")', (SETTINGS, CONTRACT),
           "test_class_mode_is_the_article_for_one_epoch_in_its_own_folder"),
    Mutant("one shift for the whole batch", "helpers/further.py",
           "dx = rng.integers(0, 2 * pad + 1, n)", "dx = np.full(n, rng.integers(0, 2 * pad + 1))",
           (FURTHER,),
           "test_augment_flips_and_shifts_each_image_on_its_own"),
    Mutant("augmentation flips every image", "helpers/further.py", "rng.random(n) < (0.5 if flip else 0.0)",
           "rng.random(n) < (2 if flip else 0.0)", (FURTHER,),
           "test_augment_flips_and_shifts_each_image_on_its_own"),
    Mutant("multiply-adds of a convolution ignore its input channels", "helpers/further.py",
           "return int(rows * cols * k_rows * k_cols * in_channels * filters)",
           "return int(rows * cols * k_rows * k_cols * filters)", (FURTHER,),
           "test_the_article_models_multiply_adds_are_counted_layer_by_layer"),
    Mutant("the recipe's weight decay silently dropped", "helpers/further.py",
           'penalty = keras.regularizers.L2(config["weight_decay"]) if config["weight_decay"] else None',
           "penalty = None", (FURTHER, CONTRACT),
           "test_weight_decay_is_an_l2_penalty_of_5e_4_on_every_kernel"),
    Mutant("one-cycle SGD without Nesterov momentum", "helpers/further.py", "nesterov=True", "nesterov=False",
           (FURTHER,),
           "test_one_cycle_rises_to_its_peak_then_falls_to_zero_at_the_last_step"),
    Mutant("live progress opens a new output for every update", "helpers/progress.py",
           "        if not self._opened:", "        if True:", (PROGRESS,),
           "test_a_headless_run_stores_one_progress_line_and_one_line_per_epoch"),
    Mutant("TensorFlow's start-up notes no longer silenced", "helpers/__init__.py",
           "    _os.dup2(devnull, 2)\n", "    pass\n",
           ("tests/test_failures.py::test_the_series_starts_quietly_on_every_installed_backend",),
           "test_the_series_starts_quietly_on_every_installed_backend[tensorflow]"),
    Mutant("training curve drawn from the validation values", "helpers/plots.py",
           'ax.plot(epochs, history[key], "o-", label="training")',
           'ax.plot(epochs, history[f"val_{key}"], "o-", label="training")', (PLOTS,),
           "test_history_plot_draws_training_and_validation_from_their_own_keys"),
    # notebook 04's own cells: what a reader is taught, computed wrongly without raising
    Mutant("nb 04: confusion matrix with predictions as rows", NB04,
           "confusion_matrix(y_true, y_pred, labels=range(10))", "confusion_matrix(y_pred, y_true, labels=range(10))",
           (VALIDATION,), "test_confusion_matrix_rows_are_the_true_classes"),
    Mutant("nb 04: shares of each predicted class (columns sum to 1), titled rows", NB04,
           "counts / counts.sum(axis=1, keepdims=True)", "counts / counts.sum(axis=0, keepdims=True)",
           (VALIDATION,), "test_confusion_matrix_rows_are_the_true_classes"),
    Mutant("nb 04: confused pairs, 'A taken for B' and 'B taken for A' swapped", NB04,
           "counts[i, j], counts[j, i])", "counts[j, i], counts[i, j])",
           (VALIDATION,), "test_confusion_matrix_rows_are_the_true_classes"),
    Mutant("nb 04: AUC with its axes swapped, auc(tpr, fpr)", NB04,
           "per_class_auc[name] = auc(fpr, tpr)", "per_class_auc[name] = auc(tpr, fpr)",
           (VALIDATION,), "test_auc_per_class_and_averages_equal_roc_auc_score"),
    Mutant("nb 04: 'micro-average' AUC computed as the macro average", NB04,
           'micro = roc_auc_score(y_onehot, probs, average="micro")',
           'micro = roc_auc_score(y_onehot, probs, average="macro")',
           (VALIDATION,), "test_auc_per_class_and_averages_equal_roc_auc_score"),
    Mutant("nb 04: imbalanced-learn report with y_pred and y_true swapped (precision <-> recall)", NB04,
           "classification_report_imbalanced(y_true, y_pred,", "classification_report_imbalanced(y_pred, y_true,",
           (VALIDATION,), "test_report_precision_recall_f1_equal_an_independent_count"),
    Mutant("nb 04: F1 chart sorted best first, so 'weakest' names the strongest", NB04,
           'order = report["F1"].sort_values()', 'order = report["F1"].sort_values(ascending=False)',
           (VALIDATION,), "test_report_precision_recall_f1_equal_an_independent_count"),
    Mutant("nb 04: decoding table's precision and recall from swapped arguments", NB04,
           "precision_recall_fscore_support(y_true, y_pred_any,", "precision_recall_fscore_support(y_pred_any, y_true,",
           (VALIDATION,), "test_the_decoding_table_compares_argmax_with_threshold_then_argmax"),
    Mutant("nb 04: threshold demonstration at 0.05 instead of the article's 0.5", NB04,
           "above = (probs >= 0.5).astype(int)", "above = (probs >= 0.05).astype(int)",
           (VALIDATION,), "test_threshold_demonstration_counts_what_its_text_says"),
    Mutant("nb 04: threshold-then-argmax 'fixed' to plain argmax, hiding the artefact it shows", NB04,
           "y_naive = above.argmax(axis=1)", "y_naive = probs.argmax(axis=1)",
           (VALIDATION,), "test_threshold_demonstration_counts_what_its_text_says"),
    Mutant("nb 04: confident mistakes sorted least confident first", NB04,
           "wrong[np.argsort(-top[wrong])]", "wrong[np.argsort(top[wrong])]",
           (VALIDATION,), "test_confident_mistakes_are_the_most_confident_wrong_answers_in_falling_order"),
    Mutant("nb 04: 'over 90% confidence' counted over all images, not the mistakes", NB04,
           "{(top[wrong] > 0.9).sum():,}", "{(top > 0.9).sum():,}",
           (VALIDATION,), "test_confident_mistakes_are_the_most_confident_wrong_answers_in_falling_order"),
    Mutant("nb 04: the near miss picks the most confident wrong answer instead", NB04,
           "np.argmax(probs[wrong, y_true[wrong]])", "np.argmax(probs[wrong, y_pred[wrong]])",
           (VALIDATION,), "test_confident_mistakes_are_the_most_confident_wrong_answers_in_falling_order"),
    Mutant("nb 04: the best epoch by validation accuracy, not the checkpoint's validation loss", NB04,
           'best_epoch = int(np.argmin(history["val_loss"])) + 1',
           'best_epoch = int(np.argmax(history["val_accuracy"])) + 1',
           (VALIDATION,), "test_the_probabilities_are_the_saved_models_and_each_accuracy_its_own_set"),
    Mutant("nb 04: 'test' accuracy measured on the validation images", NB04,
           '"test": (x_test_raw, y_test_raw)}.items():', '"test": (x_val, y_val)}.items():',
           (VALIDATION,), "test_the_probabilities_are_the_saved_models_and_each_accuracy_its_own_set"),
    # the worked solutions' own cells
    Mutant("sol 01: 'mirrored' reverses the colour channels, not the columns", SOL01,
           "mirrored = image[:, ::-1]", "mirrored = image[:, :, ::-1]",
           (f"{SOLUTIONS}::test_sol01_flips_reverse_the_rows_or_the_columns",),
           "test_sol01_flips_reverse_the_rows_or_the_columns"),
    Mutant("sol 01: channel means of the test images, printed as the training set's", SOL01,
           "means = x_train.mean(axis=(0, 1, 2))", "means = x_test.mean(axis=(0, 1, 2))",
           (f"{SOLUTIONS}::test_sol01_channel_means_and_the_dominant_channel",),
           "test_sol01_channel_means_and_the_dominant_channel"),
    Mutant("sol 02: the channel means summed in float32 (the pitfall the solution warns of)", SOL02,
           'mean = x_train_scaled.mean(axis=(0, 1, 2), dtype="float64")', "mean = x_train_scaled.mean(axis=(0, 1, 2))",
           (f"{SOLUTIONS}::test_sol02_channel_statistics_and_the_standardised_range",),
           "test_sol02_channel_statistics_and_the_standardised_range"),
    Mutant("sol 02: variance where the standard deviation belongs", SOL02,
           'std = np.array([x_train_scaled[..., c].std(dtype="float64")',
           'std = np.array([x_train_scaled[..., c].var(dtype="float64")',
           (f"{SOLUTIONS}::test_sol02_channel_statistics_and_the_standardised_range",),
           "test_sol02_channel_statistics_and_the_standardised_range"),
    Mutant("sol 02: class numbers as int64, so the saving printed is not the 40-fold the text quotes", SOL02,
           'as_numbers = y_train.ravel().astype("uint8")', 'as_numbers = y_train.ravel().astype("int64")',
           (f"{SOLUTIONS}::test_sol02_class_numbers_take_a_fortieth_of_the_memory_and_give_the_same_loss",),
           "test_sol02_class_numbers_take_a_fortieth_of_the_memory_and_give_the_same_loss"),
    Mutant("sol 03: the conv_axis switch ignored, so exercise 1 trains the baseline again", SOL03,
           "return helpers.build_article_model(seed=seed, **change)",
           'return helpers.build_article_model(seed=seed, **{k: v for k, v in change.items() if k != "conv_axis"})',
           (SOLUTIONS + "::test_sol03_each_variant_differs_from_the_articles_model_in_one_place",),
           "test_sol03_each_variant_differs_from_the_articles_model_in_one_place"),
    Mutant("sol 03: SGD trained at learning rate 0.1 under the heading 0.01", SOL03,
           'sgd = article_model(optimizer=keras.optimizers.SGD(learning_rate=0.01))',
           'sgd = article_model(optimizer=keras.optimizers.SGD(learning_rate=0.1))',
           (SOLUTIONS + "::test_sol03_each_variant_differs_from_the_articles_model_in_one_place",),
           "test_sol03_each_variant_differs_from_the_articles_model_in_one_place"),
    Mutant("sol 03: the baseline quoted from training accuracy, printed as validation accuracy", SOL03,
           'baseline = results["the article\'s model"]["val_accuracy"][-1]',
           'baseline = results["the article\'s model"]["accuracy"][-1]',
           (SOLUTIONS + "::test_sol03_the_summary_is_each_variants_last_epoch",),
           "test_sol03_the_summary_is_each_variants_last_epoch"),
    Mutant("sol 03: the summary's validation loss taken from the training loss", SOL03,
           '"validation loss": h["val_loss"][-1]', '"validation loss": h["loss"][-1]',
           (SOLUTIONS + "::test_sol03_the_summary_is_each_variants_last_epoch",),
           "test_sol03_the_summary_is_each_variants_last_epoch"),
    Mutant("sol 04: 'least confident 10%' cut at the 90% quantile", SOL04,
           "cut = np.quantile(top, 0.10)", "cut = np.quantile(top, 0.90)",
           (SOLUTIONS + "::test_sol04_accuracy_on_the_least_confident_tenth",),
           "test_sol04_accuracy_on_the_least_confident_tenth"),
    Mutant("sol 04: the least confident images selected as the most confident", SOL04,
           "unsure = top <= cut", "unsure = top >= cut",
           (SOLUTIONS + "::test_sol04_accuracy_on_the_least_confident_tenth",),
           "test_sol04_accuracy_on_the_least_confident_tenth"),
    Mutant("sol 04: report with y_true and y_pred swapped (precision <-> recall)", SOL04,
           "classification_report_imbalanced(y_true, y, labels=", "classification_report_imbalanced(y, y_true, labels=",
           (SOLUTIONS + "::test_sol04_the_report_under_threshold_then_argmax",),
           "test_sol04_the_report_under_threshold_then_argmax"),
    Mutant("sol 04: the change computed as argmax minus threshold-then-argmax", SOL04,
           "change = (report(y_naive) - report(y_pred))", "change = (report(y_pred) - report(y_naive))",
           (SOLUTIONS + "::test_sol04_the_report_under_threshold_then_argmax",),
           "test_sol04_the_report_under_threshold_then_argmax"),
    Mutant("sol 04: gain from pooling computed the wrong way round", SOL04,
           'f1_change = f1["with pooling"] - f1["without pooling"]',
           'f1_change = f1["without pooling"] - f1["with pooling"]',
           (SOLUTIONS + "::test_sol04_per_class_f1_with_and_without_pooling",),
           "test_sol04_per_class_f1_with_and_without_pooling"),
    # notebook 05's experiments (helpers/further.py) and its own cells
    Mutant("augmentation shifts only -2..+1 rows", "helpers/further.py",
           "dy = rng.integers(0, 2 * pad + 1, n)", "dy = rng.integers(0, 2 * pad, n)", (FURTHER,),
           "test_augment_uses_every_shift_from_minus_2_to_plus_2"),
    Mutant("whitening projects but does not rescale", "helpers/further.py",
           "filters = directions * scale", "filters = directions", (FURTHER,),
           "test_whitening_decorrelates_real_patches"),
    Mutant("an ablation row changes a second, unnamed setting", "helpers/further.py",
           '("K", "+ weight decay: an L2 penalty of 5e-4 on every kernel", "J", {"weight_decay": 5e-4}),',
           '("K", "+ weight decay: an L2 penalty of 5e-4 on every kernel", "J", {"weight_decay": 5e-4, "augment": True}),',
           (FURTHER,), "test_every_ablation_row_changes_exactly_the_settings_it_names"),
    Mutant("count_macs counts a separable convolution as free", "helpers/further.py",
           "if layer.weights and not isinstance(layer, _CHEAP_WEIGHTED):",
           "if layer.weights and isinstance(layer, keras.layers.Dense):", (FURTHER,),
           "test_count_macs_refuses_a_layer_with_weights_it_cannot_count"),
    Mutant("nb 05: flip averaging turns the images upside down", NB05,
           "probabilities(saved, x_test_raw[:, :, ::-1], y_test_raw)",
           "probabilities(saved, x_test_raw[:, ::-1], y_test_raw)", (FURTHER_NB,),
           "test_test_accuracy_and_flip_averaging_are_what_they_say"),
    Mutant("nb 05: the test split kept in memory from the start", NB05,
           "(x_all, y_all), _ = helpers.load_cifar10()", "(x_all, y_all), (x_test_raw, y_test_raw) = _ = helpers.load_cifar10()",
           (FURTHER_NB,), "test_no_cell_before_the_test_heading_can_reach_the_test_set"),
    Mutant("nb 05: confident mistakes sorted by rising confidence", NB05,
           "worst = wrong[np.argsort(-top_prob[wrong])][:16]", "worst = wrong[np.argsort(top_prob[wrong])][:16]",
           (FURTHER_NB,), "test_confident_mistakes_and_confused_pairs"),
    Mutant("nb 05: every difference taken against row A", NB05,
           "acc.loc[row] - acc.loc[base] for", 'acc.loc[row] - acc.loc["A"] for', (FURTHER_NB,),
           "test_the_ablation_table_is_the_runs_statistics"),
    Mutant("nb 05: the article's epoch scaled to 50,000 images", NB05,
           '.mean() / 1000 * 45_000 + a_runs["validation s"].mean()', '.mean() / 1000 * 50_000 + a_runs["validation s"].mean()',
           (FURTHER_NB,), "test_the_article_time_is_row_a_scaled_to_its_10_epochs"),
    Mutant("nb 05: every row at Keras' default compile setting", NB05,
           'jit = FASTEST.get(row, "auto")', 'jit = "auto"', (FURTHER_NB,),
           "test_each_rows_compile_setting_is_the_one_the_table_states"),
    Mutant("nb 05: the final schedule planned for 10 epochs", NB05,
           'compile_network(final_model, RECIPE, budget["final_epochs"] * steps_per_epoch,',
           'compile_network(final_model, RECIPE, 10 * steps_per_epoch,', (FURTHER_NB,),
           "test_the_final_learning_rate_reaches_zero_at_the_last_step"),
    Mutant("nb 05: confused pairs counted one way only", NB05,
           "int(counts[i, j] + counts[j, i])", "int(2 * counts[i, j])", (FURTHER_NB,),
           "test_confident_mistakes_and_confused_pairs"),
    Mutant("self-check: one-hot labels counted as float64, so 40 is marked wrong", EXERCISES,
           '"factor": Answer(lambda: 10 * 4 // 1, 0,', '"factor": Answer(lambda: 10 * 8 // 1, 0,', (EXERCISES_TEST,),
           "test_the_right_answer_is_correct[02.2]"),
    Mutant("self-check: the dominant channel taken as the darkest", EXERCISES,
           "CHANNELS[int(np.argmax(_means_255()))]", "CHANNELS[int(np.argmin(_means_255()))]", (EXERCISES_TEST,),
           "test_the_right_answer_is_correct[01.2]"),
    Mutant("self-check: a tolerance so loose that near misses pass", EXERCISES,
           "np.abs(given - expected) <= tolerance + 1e-9", "np.abs(given - expected) <= tolerance + 1", (EXERCISES_TEST,),
           "test_a_wrong_answer_gets_its_hint"),
    Mutant("self-check: answers of the wrong shape no longer refused", EXERCISES,
           "return given.shape == expected.shape and bool(np.all(", "return bool(np.all(", (EXERCISES_TEST,),
           "test_answers_of_the_wrong_shape_or_kind_are_not_correct"),
    Mutant("the tests no longer unpack an archive named by CIFAR10_PATH", "conftest.py",
           "    if os.environ.get(\"CIFAR10_PATH\"):\n        _unpack_if_archive()\n",
           "    if os.environ.get(\"CIFAR10_PATH\"):\n        pass\n", (DATA + "::test_make_test_accepts_the_archive_the_docs_recommend",),
           "test_make_test_accepts_the_archive_the_docs_recommend"),
    Mutant("the logits reach the softmax unscaled", "helpers/further.py",
           'layers.Rescaling(config["logit_scale"], name="logit_scale")', 'layers.Rescaling(1.0, name="logit_scale")',
           (FURTHER,), "test_the_recipe_scales_its_logits_by_one_eighth"),
    Mutant("a shared read-only artifacts folder is not noticed before training", "helpers/artifacts.py",
           "if not _writable(self.path.parent):", "if False:", (ARTIFACTS,),
           "test_a_read_only_shared_folder_sends_the_model_to_the_students_own"),
    Mutant("a save refused mid-training stops the training", "helpers/artifacts.py",
           "            if err.errno not in _NOT_YOURS:\n                raise\n            self._move_to_own_folder()",
           "            raise\n            self._move_to_own_folder()", (ARTIFACTS,),
           "test_a_folder_that_refuses_a_save_mid_training_loses_nothing"),
    Mutant("nb 05: every seed compiles a new network", NB05,
           "    if row in compiled:\n", "    if False:\n", (FURTHER_NB,),
           "test_the_ablation_compiles_one_network_per_row"),
    Mutant("restarting a network zeroes Adam's learning rate too", "helpers/further.py",
           'if variable.name != "learning_rate":', "if True:", (FURTHER,),
           "test_restart_network_starts_a_compiled_network_again_from_another_seed"),
    Mutant("the article builder ignores conv_axis", "helpers/model.py",
           "conv_norm = max_norm if conv_axis == 0 else keras.constraints.MaxNorm(3, axis=conv_axis)",
           "conv_norm = max_norm", (CONTRACT,), "test_each_option_of_the_article_builder_changes_one_thing"),
    Mutant("nb 05's article rows ignore their head: row B keeps Dense(500)", "helpers/further.py",
           'seed=seed, head=config["head"], compile=False)', "seed=seed, compile=False)", (CONTRACT,),
           "test_notebook_05s_article_rows_are_the_article_builder"),
    Mutant("the loader writes every training batch over the first rows", "helpers/data.py",
           "self.images[self.count:end] = images", "self.images[:len(images)] = images", (DATA,),
           "test_every_batch_lands_in_its_own_rows_in_file_order"),
    Mutant("load_best_model(compile=False) still loads the optimiser", "helpers/artifacts.py",
           "keras.models.load_model(settings.model_path, compile=compile)",
           "keras.models.load_model(settings.model_path)", (ARTIFACTS,),
           "test_the_checkpoint_holds_the_epoch_with_the_lowest_validation_loss"),
    Mutant("nb 05: each batch of test probabilities comes back in reverse order", NB05,
           "out.append(keras.ops.convert_to_numpy(model(x, training=False)))",
           "out.append(keras.ops.convert_to_numpy(model(x, training=False))[::-1])", (FURTHER_NB,),
           "test_test_accuracy_and_flip_averaging_are_what_they_say"),
    Mutant("self-check 04.1: the most confident tenth taken for the least", EXERCISES,
           "return float(correct[order[:tenth]].mean()), float(correct[order[tenth:]].mean())",
           "return float(correct[order[-tenth:]].mean()), float(correct[order[:-tenth]].mean())", (EXERCISES_TEST,),
           "test_the_right_answer_is_correct[04.1]"),
    Mutant("ImageBatches converts the whole set up front as well (the float32 copy is back)", "helpers/data.py",
           "self.x, self.y, self.batch_size, self.shuffle = x, y, int(batch_size), shuffle",
           "self.x, self.y, self.batch_size, self.shuffle = x, y, int(batch_size), shuffle\n"
           "        self.converted = convert_data_format(x, y)", (CONVERSION,),
           "test_training_from_image_batches_never_holds_the_float32_training_set"),
    Mutant("ImageBatches never reshuffles: every epoch in the first epoch's order", "helpers/data.py",
           "        if self.shuffle:\n            self.order = self.rng.permutation(len(self.x))",
           "        if self.shuffle and False:\n            self.order = self.rng.permutation(len(self.x))", (CONVERSION,),
           "test_the_shuffle_is_new_every_epoch_and_the_same_for_the_same_seed"),
    Mutant("ImageBatches drops the last, shorter batch", "helpers/data.py",
           "return -(-len(self.x) // self.batch_size)", "return len(self.x) // self.batch_size", (CONVERSION,),
           "test_image_batches_in_order_are_the_whole_conversion_bit_for_bit"),
    Mutant("ImageBatches sorts a batch's images but not its labels", "helpers/data.py",
           "self.transform(self.x[take]), self.y[take])",
           "self.transform(self.x[take]), self.y[self.order[index * self.batch_size:(index + 1) * self.batch_size]])",
           (CONVERSION,), "test_shuffled_image_batches_serve_each_image_once_with_its_own_label"),
    Mutant("ImageBatches accepts one-hot labels silently", "helpers/data.py",
           "if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):", "if y.ndim > 2:", (CONVERSION,),
           "test_image_batches_refuse_bad_input_naming_the_fix"),
    Mutant("nb 03: training fed from the float32 arrays again", "notebooks/03_model_building_and_training.ipynb",
           "history = model.fit(train_batches, validation_data=(x_val, y_val), epochs=settings.epochs,",
           "history = model.fit(*helpers.convert_data_format(x_train, y_train), validation_data=(x_val, y_val), epochs=settings.epochs,",
           (CONTRACT,), "test_notebooks_03_and_04_never_hold_the_training_set_as_float32"),
    Mutant("nb 04: the training set converted whole before evaluating", NB04,
           "batches = helpers.ImageBatches(x, y, batch_size=500)",
           "batches = helpers.ImageBatches(x, y, batch_size=500); x_all, y_all = helpers.convert_data_format(x_train_raw, y_train_raw)",
           (CONTRACT,), "test_notebooks_03_and_04_never_hold_the_training_set_as_float32"),
    Mutant("on TensorFlow the batch-norm biases learn at the common rate (their tf.Variable name has ':0')",
           "helpers/further.py", 'or variable.name.split(":")[0]', "or variable.name", (FURTHER,),
           "test_batch_norm_biases_take_steps_bias_lr_scale_times_larger"),
    Mutant("the identity start puts its 1 in a corner of the window", "helpers/further.py",
           "kernel[rows // 2, cols // 2, np.arange(n), np.arange(n)] = 1.0",
           "kernel[0, 0, np.arange(n), np.arange(n)] = 1.0", (FURTHER,),
           "test_identity_init_makes_each_block_convolution_copy_its_input_at_the_start"),
    Mutant("the identity start leaves the other filters at zero", "helpers/further.py",
           "kernel[..., :n] = 0.0", "kernel[...] = 0.0", (FURTHER,),
           "test_identity_init_makes_each_block_convolution_copy_its_input_at_the_start"),
    Mutant("nb 05: the final model learns from the 45,000 only, the validation images left out", NB05,
           "x_final, y_final = np.concatenate([x_train, x_val_raw]), np.concatenate([y_train, y_val_raw])",
           "x_final, y_final = x_train, y_train", (FURTHER_NB,),
           "test_the_final_model_learns_from_the_training_and_validation_images"),
    Mutant("nb 05: the final model's labels in the wrong order (validation labels first)", NB05,
           "np.concatenate([y_train, y_val_raw])", "np.concatenate([y_val_raw, y_train])", (FURTHER_NB,),
           "test_the_final_model_learns_from_the_training_and_validation_images"),
]


def scratch_copy(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for name in files:
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def _code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def occurrences(root: Path, m: Mutant) -> int:
    """How often the mutant's text occurs where it would apply: the .py file, or, for a notebook,
    its code cells (1 only when one code cell holds it once)."""
    path = root / m.file
    if not path.is_file():
        return 0
    if path.suffix != ".ipynb":
        return path.read_text().count(m.old)
    import nbformat
    counts = [cell.source.count(m.old) for cell in _code_cells(nbformat.read(path, as_version=4))]
    return sum(counts) if sum(counts) != 1 else 1


def apply(root: Path, m: Mutant) -> None:
    path = root / m.file
    if path.suffix != ".ipynb":
        path.write_text(path.read_text().replace(m.old, m.new))
        return
    import nbformat
    nb = nbformat.read(path, as_version=4)
    (cell,) = [c for c in _code_cells(nb) if m.old in c.source]
    cell.source = cell.source.replace(m.old, m.new)
    nbformat.write(nb, path)


@dataclass
class Run:
    code: int | None               # pytest's exit status; None: killed at the time limit
    failed: list                   # node ids of the tests that failed or errored
    seconds: float
    last_line: str = ""


def run_tests(copy: Path, tests, timeout: float) -> Run:
    """pytest on `tests` in the scratch copy, in its own process group (notebook kernels too),
    killed as a whole at the time limit."""
    env = dict(os.environ, PYTHONPATH=str(copy), CIFAR10_QUICK="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("CIFAR10_TEST_ARTIFACTS", None)      # each run in a fresh temporary artifacts folder
    report = copy / ".mutants-junit.xml"
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             f"--junitxml={report}", *tests], cwd=copy, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return Run(None, [], time.perf_counter() - started)
    finally:
        if proc.poll() is None:                  # interrupted: leave nothing running
            os.killpg(proc.pid, signal.SIGKILL)
    seconds = time.perf_counter() - started
    failed = []
    if report.is_file():
        for case in ET.parse(report).iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                module = case.get("classname", "").replace(".", "/")
                failed.append(f"{module}.py::{case.get('name')}")
    lines = [line for line in out.strip().splitlines() if line.strip()]
    return Run(proc.returncode, failed, seconds, lines[-1] if lines else "")


def names_catcher(failed: str, catcher: str) -> bool:
    """Does the failed test's node id (file.py::name[params]) name the mutant's catcher?"""
    file, _, name = failed.rpartition("::")
    want_file, _, want = catcher.rpartition("::")
    if want_file and not (file == want_file or file.startswith(want_file.removesuffix(".py") + "/")):
        return False
    return name == want or ("[" not in want and name.startswith(want + "["))


def verdict(run: Run, m: Mutant) -> str:
    if run.code is None:
        return "TIMEOUT"
    if run.code == 0:
        return "SURVIVED"
    if run.code != 1:
        return f"ERROR (pytest exit {run.code})"
    return "caught" if any(names_catcher(f, m.catcher) for f in run.failed) else "OTHER TEST"


def short(node: str) -> str:
    return node.rpartition("::")[2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("only", nargs="*", type=int, help="mutant numbers to run (default: all)")
    ap.add_argument("--list", action="store_true", help="print the mutants and stop")
    ap.add_argument("--timeout", type=float, default=TIMEOUT_S,
                    help=f"seconds each pytest run may take (default {TIMEOUT_S})")
    args = ap.parse_args()
    chosen = [(i, m) for i, m in enumerate(MUTANTS, start=1) if not args.only or i in args.only]
    if args.list:
        for i, m in chosen:
            print(f"{i:2}. {m.what}  ({m.file}; caught by {m.catcher}; runs {', '.join(m.tests)})")
        return 0
    started = time.perf_counter()
    verdicts = {}
    with tempfile.TemporaryDirectory(prefix="cifar10-mutants-") as tmp:
        base = Path(tmp) / "clean"
        scratch_copy(base)
        for i, m in chosen:                      # every mutation must apply exactly once
            count = occurrences(base, m)
            if count != 1:
                verdicts[i] = "DOES NOT APPLY"
                print(f"mutant {i} ({m.what}): its text occurs {count} times in "
                      f"{m.file}{' code cells' if m.file.endswith('.ipynb') else ''}; update the list")
        runnable = [(i, m) for i, m in chosen if i not in verdicts]
        tests = sorted({t for _, m in runnable for t in m.tests})
        clean = run_tests(base, tests, args.timeout * 2)
        state = ("all guarding tests pass" if clean.code == 0 else "TIMEOUT" if clean.code is None
                 else f"FAILS (pytest exit {clean.code}: {clean.last_line}) {', '.join(clean.failed)}")
        print(f"unmutated copy: {state} ({clean.seconds:.0f} s)", flush=True)
        if clean.code != 0:
            return 2
        print("\n| # | mutant | file | verdict | meant to be caught by | tests that failed | s |"
              "\n|---|---|---|---|---|---|---|", flush=True)
        for i, m in chosen:
            if i in verdicts:
                print(f"| {i} | {m.what} | {m.file} | {verdicts[i]} | {short(m.catcher)} | | |", flush=True)
                continue
            copy = Path(tmp) / f"mutant-{i}"
            shutil.copytree(base, copy)
            apply(copy, m)
            run = run_tests(copy, m.tests, args.timeout)
            verdicts[i] = verdict(run, m)
            # the named catcher first, when it failed, then the others
            failed = sorted(dict.fromkeys(short(f) for f in run.failed), key=lambda n: not names_catcher("::" + n, m.catcher))
            shown = ", ".join(failed[:3]) + (f" (+{len(failed) - 3} more)" if len(failed) > 3 else "")
            if verdicts[i].startswith("ERROR"):
                shown = run.last_line
            elif verdicts[i] == "TIMEOUT":
                shown = f"killed after {args.timeout:.0f} s"
            print(f"| {i} | {m.what} | {m.file} | {verdicts[i]} | {short(m.catcher)} | {shown} "
                  f"| {run.seconds:.0f} |", flush=True)
            shutil.rmtree(copy, ignore_errors=True)
    caught = sum(v == "caught" for v in verdicts.values())
    tally = {}
    for v in verdicts.values():
        key = v.split(" (")[0]
        tally[key] = tally.get(key, 0) + 1
    print(f"\n{caught} of {len(chosen)} mutants caught ("
          + ", ".join(f"{n} {k}" for k, n in sorted(tally.items())) + f"); "
          f"{time.perf_counter() - started:.0f} s in all.")
    return 0 if caught == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
