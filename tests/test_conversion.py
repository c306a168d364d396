"""The article's conversion, done right: float32 in [0, 1] and one-hot labels; and the same
conversion served one batch at a time (ImageBatches), as notebooks 03 and 04 train and evaluate."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import ImageBatches, convert_data_format

REPO = Path(__file__).resolve().parent.parent


def test_images_become_float32_in_unit_range_without_float64(real_data):
    (x_train, y_train), _ = real_data
    x, y = convert_data_format(x_train, y_train)
    assert x.dtype == np.float32 and x.shape == (50_000, 32, 32, 3)
    assert x.min() == 0.0 and x.max() == 1.0
    assert x.nbytes == 50_000 * 32 * 32 * 3 * 4          # 614,400,000 bytes, about 0.6 GB
    assert x.nbytes * 2 == x_train.astype(float).nbytes  # the article's float64: twice that
    # same scale for every image: pixel 255 -> 1.0, 51 -> 0.2, whatever the set's maximum
    assert np.allclose(x[:100], x_train[:100] / np.float32(255))


def test_labels_become_one_hot_rows(real_data):
    (_, y_train), (_, y_test) = real_data
    _, y = convert_data_format(np.zeros((len(y_test), 32, 32, 3), np.uint8), y_test)
    assert y.shape == (10_000, 10) and y.dtype == np.float32
    assert np.array_equal(y.sum(axis=1), np.ones(10_000))
    assert np.array_equal(y.argmax(axis=1), y_test.ravel())
    assert y[0].tolist() == [float(i == y_test[0, 0]) for i in range(10)]


def test_scaling_does_not_depend_on_the_set_maximum():
    dark = np.full((2, 32, 32, 3), 100, np.uint8)  # brightest pixel 100, not 255
    x, _ = convert_data_format(dark, np.array([[0], [1]]))
    assert np.allclose(x, 100 / 255)   # the article's x / x.max() would give 1.0


def test_already_converted_images_are_refused():
    with pytest.raises(TypeError, match=r"expects the uint8 images.*got float32"):
        convert_data_format(np.zeros((1, 32, 32, 3), np.float32), np.array([[0]]))


# ------------------------------------------------- the same conversion, one batch at a time


def _epoch(batches):
    parts = [batches[i] for i in range(len(batches))]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), [len(p[0]) for p in parts]


def test_image_batches_in_order_are_the_whole_conversion_bit_for_bit(real_data):
    (x_train, y_train), _ = real_data
    x, y = x_train[:1000], y_train[:1000]
    images, labels, sizes = _epoch(ImageBatches(x, y, batch_size=300))
    assert sizes == [300, 300, 300, 100]                        # every image, the last batch shorter
    whole_x, whole_y = convert_data_format(x, y)
    assert images.dtype == np.float32 and labels.dtype == np.float32
    assert np.array_equal(images, whole_x) and np.array_equal(labels, whole_y)


def test_shuffled_image_batches_serve_each_image_once_with_its_own_label(real_data):
    (x_train, y_train), _ = real_data
    x, y = x_train[:1000], y_train[:1000]
    batches = ImageBatches(x, y, batch_size=256, shuffle=True, seed=3)
    for _ in range(2):                                          # two epochs, two orders
        images, labels, sizes = _epoch(batches)
        taken = np.concatenate([np.sort(batches.order[i:i + 256]) for i in range(0, 1000, 256)])
        assert sorted(taken.tolist()) == list(range(1000))    # each image once per epoch
        whole_x, whole_y = convert_data_format(x[taken], y[taken])
        assert np.array_equal(images, whole_x) and np.array_equal(labels, whole_y)
        batches.on_epoch_end()


def test_the_shuffle_is_new_every_epoch_and_the_same_for_the_same_seed(real_data):
    (x_train, y_train), _ = real_data
    x, y = x_train[:500], y_train[:500]

    def orders(seed, epochs=3):
        batches, seen = ImageBatches(x, y, 32, shuffle=True, seed=seed), []
        for _ in range(epochs):
            seen.append(batches.order.copy())
            batches.on_epoch_end()
        return seen

    first = orders(7)
    assert all(np.array_equal(a, b) for a, b in zip(first, orders(7)))    # a re-run: the same batches
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[1], first[2])
    assert not np.array_equal(first[0], orders(8)[0])
    in_order = ImageBatches(x, y, 32)
    in_order.on_epoch_end()
    assert np.array_equal(in_order.order, np.arange(500))                  # evaluation: never shuffled


@pytest.mark.parametrize("bad, error, message", [
    (dict(x=np.zeros((4, 32, 32, 3), np.float32)), TypeError, "uint8 images load_cifar10"),
    (dict(y=np.zeros((3, 1), np.uint8)), ValueError, "4 images but 3 labels"),
    (dict(y=np.eye(10, dtype=np.float32)[:4]), ValueError, r"expects class numbers.*one-hot encodes each batch itself"),
    (dict(batch_size=0), ValueError, "batch_size must be a whole number"),
    (dict(batch_size=2.5), ValueError, "batch_size must be a whole number"),
])
def test_image_batches_refuse_bad_input_naming_the_fix(bad, error, message):
    args = dict(x=np.zeros((4, 32, 32, 3), np.uint8), y=np.zeros((4, 1), np.uint8), batch_size=2) | bad
    with pytest.raises(error, match=message):
        ImageBatches(args["x"], args["y"], args["batch_size"])
    with pytest.raises(IndexError):
        ImageBatches(np.zeros((4, 32, 32, 3), np.uint8), np.zeros((4, 1), np.uint8), 2)[2]


_PEAK_SCRIPT = r"""
import os, sys, numpy as np
import helpers, keras
from helpers import ImageBatches, load_cifar10, split_train_val, get_settings
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
(x_raw, y_raw), _ = load_cifar10(sys.argv[1], train=True)
(x, y), _ = split_train_val(x_raw, y_raw, get_settings())       # full mode: 45,000 images
model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
model.compile("adam", keras.losses.CategoricalCrossentropy(from_logits=True))
model.fit(ImageBatches(x[:64], y[:64], 32), epochs=1, verbose=0)            # compile the step first
before = hwm()
model.fit(ImageBatches(x, y, 32, shuffle=True), epochs=1, steps_per_epoch=20, verbose=0)
model.evaluate(ImageBatches(x, y, 500), steps=5, verbose=0)
print(hwm() - before)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads peak memory from /proc (Linux)")
def test_training_from_image_batches_never_holds_the_float32_training_set(batch_dir, tmp_path):
    """The reason notebooks 03 and 04 use ImageBatches: no full-size float32 copy, no copy by Keras.
    Converting the 45,000 images at once would add 553 MB to the peak; fit's copy of them as many again."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIFAR10_")} | {"PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(batch_dir)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    added = float(out.stdout.split()[-1])
    assert added < 250, f"training and evaluating from ImageBatches raised the peak by {added:.0f} MiB"
