"""The article's conversion, done right: float32 in [0, 1] and one-hot labels."""
import numpy as np
import pytest

from helpers import convert_data_format


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
