"""Self-checks for the exercises: `check_exercise("02.2", factor=40)` says "correct" or gives a hint.

Notebooks 01 to 05 end their exercise lists with a self-check cell. A student
replaces each `None` with an answer and runs the cell; `check_exercise` prints one line per answer: "correct", "not
answered yet", or "not yet" with a hint. Answers that depend on the data (channel means, the largest pixel) are
computed from the data set when asked, never stored, and so are those that depend on the model
a student trained (notebook 04's, read from the artifacts folder of the current mode); answers that follow from arithmetic alone
(a parameter or multiply-add count) are written out below with the arithmetic beside them, and
`tests/test_exercises.py` recomputes each one independently (from the layers Keras builds).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

CHANNELS = ("red", "green", "blue")


@lru_cache(maxsize=1)
def _data_facts():
    """What the data-dependent answers need, computed once per kernel from one load: each
    channel's mean and standard deviation of x_train / 255 (exact: from pixel counts), and the
    largest pixel of each set. Only these few numbers are kept, not a second copy of the images."""
    from .data import load_cifar10
    (x_train, _), (x_test, _) = load_cifar10()
    values = np.arange(256) / 255
    counts = [np.bincount(x_train[..., c].ravel(), minlength=256) for c in range(3)]
    means = np.array([(n * values).sum() / n.sum() for n in counts])
    stds = np.array([np.sqrt((n * (values - m) ** 2).sum() / n.sum()) for n, m in zip(counts, means)])
    return means, stds, int(x_train.max()), int(x_test.max())


def _channel_stats():
    return _data_facts()[:2]


def _means_255():
    return tuple(_channel_stats()[0] * 255)


def _dominant():
    return CHANNELS[int(np.argmax(_means_255()))]


def _standardised_range(end):
    means, stds = _channel_stats()
    return tuple((end - means) / stds)


def _confidence_split():
    """Test accuracy on the tenth of the test images with the lowest top probability, and on the
    other nine tenths, for the model notebook 03 saved in the current mode (computed once per
    saved model: a retrained model is a new file, with a new modification time)."""
    from .settings import get_settings
    path = get_settings().model_path
    return _confidence_split_of(str(path), path.stat().st_mtime_ns if path.exists() else None)


@lru_cache(maxsize=2)
def _confidence_split_of(path, _modified):
    from .artifacts import load_best_model
    from .data import convert_data_format, load_cifar10
    from .settings import get_settings
    model = load_best_model(get_settings(), compile=False)      # a clear message if there is none
    _, (x_test, y_test) = load_cifar10(train=False)
    probs = np.concatenate([model.predict(convert_data_format(x_test[i:i + 1000], y_test[i:i + 1000])[0],
                                          batch_size=500, verbose=0) for i in range(0, len(x_test), 1000)])
    correct = probs.argmax(axis=1) == y_test.ravel()
    order = np.argsort(probs.max(axis=1), kind="stable")
    tenth = len(order) // 10
    return float(correct[order[:tenth]].mean()), float(correct[order[tenth:]].mean())


@dataclass(frozen=True)
class Answer:
    expected: Callable[[], object]   # computed when checked
    tolerance: float                 # absolute, per number; 0 for exact answers and words
    hint: str


EXERCISES: dict[str, dict[str, Answer]] = {
    "01.2": {
        "means": Answer(_means_255, 0.1,
                        "average over axes 0, 1 and 2 (images, rows, columns), on the 0-255 "
                        "scale, and give three numbers to one decimal, in the order red, green, blue"),
        "dominant": Answer(_dominant, 0,
                           "the channel with the largest mean: 'red', 'green' or 'blue'"),
    },
    "01.3": {
        "upside_down_index": Answer(lambda: 0, 0,
                                    "one image has shape (32, 32, 3): rows, columns, channels; "
                                    "upside down reverses the rows"),
        "left_right_index": Answer(lambda: 1, 0,
                                   "one image has shape (32, 32, 3): rows, columns, channels; "
                                   "a mirror image reverses the columns"),
    },
    "02.1": {
        "train_max": Answer(lambda: _data_facts()[2], 0,
                            "x_train.max() is the brightest value in the training set"),
        "test_max": Answer(lambda: _data_facts()[3], 0,
                           "x_test.max() is the brightest value in the test set"),
    },
    "02.2": {
        # one-hot: 10 float32 values (4 bytes each) per label; class numbers: 1 uint8 byte
        "factor": Answer(lambda: 10 * 4 // 1, 0,
                         "one-hot rows hold ten float32 values (4 bytes each) per label, class "
                         "numbers one uint8 (1 byte); compare the two arrays' nbytes"),
    },
    "02.3": {
        "low": Answer(lambda: _standardised_range(0.0), 0.05,
                      "a scaled pixel of 0 becomes (0 - mean) / std, per channel; if every "
                      "channel's mean came out 0.328, your sum ran in float32: pass dtype='float64'"),
        "high": Answer(lambda: _standardised_range(1.0), 0.05,
                       "a scaled pixel of 1 becomes (1 - mean) / std, per channel (three numbers, "
                       "red, green, blue)"),
    },
    "03.2": {
        # two 2x2 poolings: 32x32 -> 8x8 maps of 32 channels = 2,048 inputs; (2,048 + 1) x 500
        "dense_params": Answer(lambda: (8 * 8 * 32 + 1) * 500, 0,
                               "Dense(500) has one weight per input and unit, plus one bias per "
                               "unit; each 2x2 pooling halves the height and width of the maps"),
    },
    "04.1": {
        "low_tenth": Answer(lambda: _confidence_split()[0], 0.005,
                            "sort the test images by their top probability, probs.max(axis=1); "
                            "the 1,000 lowest are the tenth; give the share of them the model gets "
                            "right (argmax == true class) as a fraction, e.g. 0.25"),
        "other_nine_tenths": Answer(lambda: _confidence_split()[1], 0.005,
                                    "the same share over the other 9,000 test images, as a fraction"),
    },
    "05.1": {
        # conv 1: 32x32 positions x (3x3x3) x 32; conv 2: 32x32 x (3x3x32) x 32; Dense(10): 32 x 10
        "macs": Answer(lambda: 32 * 32 * 27 * 32 + 32 * 32 * 288 * 32 + 32 * 10, 0,
                       "the two convolutions are unchanged; global average pooling leaves 32 numbers "
                       "for Dense(10)"),
        # (3x3x3 + 1) x 32 + (3x3x32 + 1) x 32 + (32 + 1) x 10
        "params": Answer(lambda: 28 * 32 + 289 * 32 + 33 * 10, 0,
                         "count each layer's weights and biases; pooling has none"),
    },
    "05.2": {
        # 15x15 output positions x (3x3 window x 48 input channels) x 192 filters
        "macs": Answer(lambda: 15 * 15 * (3 * 3 * 48) * 192, 0,
                       "output positions x (3 x 3 x input channels) x filters; padding "
                       "'same' keeps the 15x15 map, and block 2 has 192 filters"),
    },
    "05.4": {
        # depthwise 16x16 x 9 x 32, then pointwise 16x16 x 32 x 64
        "separable_macs": Answer(lambda: 16 * 16 * 9 * 32 + 16 * 16 * 32 * 64, 0,
                                 "a 3x3 depthwise convolution per input channel, then a 1x1 "
                                 "convolution from 32 to 64 channels"),
        # the full convolution 16x16 x (3x3x32) x 64, divided by the separable count
        "times_cheaper": Answer(lambda: (16 * 16 * 288 * 64) / (16 * 16 * 9 * 32 + 16 * 16 * 32 * 64),
                                0.05, "the Conv2D's multiply-adds divided by the separable ones, to one "
                                "decimal"),
    },
}


def _matches(given, expected, tolerance) -> bool:
    if isinstance(expected, str):
        return isinstance(given, str) and given.strip().lower() == expected
    try:
        given = np.asarray(given, dtype="float64")
    except (TypeError, ValueError):
        return False
    expected = np.asarray(expected, dtype="float64")
    return given.shape == expected.shape and bool(np.all(np.abs(given - expected) <= tolerance + 1e-9))


def check_exercise(exercise: str, **answers) -> None:
    """Check the answers to one exercise: print "correct" or a hint for each. `None` means "not
    answered yet". Nothing is returned, so that a self-check cell shows only these lines."""
    if exercise not in EXERCISES:
        raise ValueError(f"No self-check for exercise {exercise!r}; the ones with a self-check are "
                         f"{', '.join(EXERCISES)}. Use the number shown in the exercise list, e.g. \"02.2\".")
    spec = EXERCISES[exercise]
    unknown = sorted(set(answers) - set(spec))
    missing = sorted(set(spec) - set(answers))
    if unknown or missing:
        raise ValueError(f"Exercise {exercise} checks the answers {', '.join(spec)}; "
                         + (f"unknown: {', '.join(unknown)}" if unknown else "")
                         + ("; " if unknown and missing else "")
                         + (f"missing: {', '.join(missing)}" if missing else "")
                         + f". Call check_exercise({exercise!r}, " + ", ".join(f"{n}=..." for n in spec) + ").")
    for name, answer in spec.items():
        given = answers[name]
        if given is None:
            print(f"{exercise} {name}: not answered yet (replace None with your answer).")
        elif _matches(given, answer.expected(), answer.tolerance):
            print(f"{exercise} {name}: correct.")
        else:
            print(f"{exercise} {name}: not yet. Hint: {answer.hint}.")
