"""Notebook 05's recipe: what it costs, how it augments, and that it learns from real images."""
import keras
import numpy as np
import pytest

from helpers import build_article_model, convert_data_format
from helpers.further import (AugmentedImages, augment, build_fast_model, count_macs, layer_macs,
                             one_cycle_sgd)

ARTICLE_MACS = 32 * 32 * 27 * 32 + 32 * 32 * 288 * 32 + 32_768 * 500 + 500 * 10


def test_the_article_models_multiply_adds_are_counted_layer_by_layer():
    model = build_article_model()
    assert [layer_macs(layer) for layer in model.layers] == [
        32 * 32 * 3 * 3 * 3 * 32, 32 * 32 * 3 * 3 * 32 * 32, 0, 32_768 * 500, 500 * 10]
    assert count_macs(model) == ARTICLE_MACS == 26_710_920


def test_the_final_model_costs_no_more_per_image_than_the_articles():
    model = build_fast_model()
    expected = (32 * 32 * 27 * 24              # stem, 3 -> 24 at 32x32
                + 32 * 32 * 9 * 24 * 32        # block 1a at 32x32, then pooled to 16x16
                + 16 * 16 * 9 * 32 * 32        # block 1b
                + 16 * 16 * 9 * 32 * 64 + 8 * 8 * 9 * 64 * 64
                + 8 * 8 * 9 * 64 * 128 + 4 * 4 * 9 * 128 * 128
                + 128 * 10)
    assert count_macs(model) == expected == 24_257_792
    assert count_macs(model) <= count_macs(build_article_model())
    assert model.count_params() < 0.02 * build_article_model().count_params()
    assert model.output_shape == (None, 10)
    assert model.layers[-1].activation is keras.activations.softmax


def test_the_final_model_is_the_documented_stack():
    model = build_fast_model()
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size, c.padding, c.use_bias) for c in convs] == [
        (w, (3, 3), "same", False) for w in (24, 32, 32, 64, 64, 128, 128)]
    assert sum(isinstance(l, keras.layers.BatchNormalization) for l in model.layers) == 7
    assert sum(isinstance(l, keras.layers.MaxPooling2D) for l in model.layers) == 3
    assert isinstance(model.layers[-2], keras.layers.GlobalMaxPooling2D)
    plain = build_fast_model(batch_norm=False)
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in plain.layers)
    assert all(c.use_bias for c in plain.layers if isinstance(c, keras.layers.Conv2D))
    assert count_macs(plain) == count_macs(model)


def test_one_cycle_rises_to_its_peak_then_falls_to_zero():
    opt = one_cycle_sgd(0.2, total_steps=100, warmup_fraction=0.2)
    assert isinstance(opt, keras.optimizers.SGD) and opt.nesterov and opt.momentum == 0.9
    schedule = keras.optimizers.schedules.deserialize(opt.get_config()["learning_rate"])
    lr = [float(schedule(step)) for step in (0, 10, 20, 60, 100)]
    assert lr[0] == pytest.approx(0.0, abs=1e-7)
    assert lr[1] == pytest.approx(0.1, rel=1e-4)
    assert lr[2] == pytest.approx(0.2, rel=1e-4)
    assert lr[3] == pytest.approx(0.1, rel=1e-3)
    assert lr[4] == pytest.approx(0.0, abs=1e-6)


def test_augment_flips_and_shifts_each_image_on_its_own(real_data):
    (x, _), _ = real_data
    batch = x[:512]
    out = augment(batch, np.random.default_rng(0), pad=2)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    assert np.array_equal(x[:512], batch)                        # the input is not changed
    unchanged = [np.array_equal(o, b) for o, b in zip(out, batch)]
    # 1 in 2 images is flipped, 24 in 25 shifted: few stay as they were, but some do
    assert 0 < sum(unchanged) < 0.1 * len(batch)
    # every output is the original (or its mirror image) moved by at most 2 pixels
    for o, b in zip(out[:64], batch[:64]):
        candidates = []
        for img in (b, b[:, ::-1]):
            padded = np.pad(img, ((2, 2), (2, 2), (0, 0)))
            candidates += [padded[dy:dy + 32, dx:dx + 32] for dy in range(5) for dx in range(5)]
        assert any(np.array_equal(o, c) for c in candidates)
    # different images get different shifts: not one offset for the whole batch
    assert len({(int(np.argmax(o.any(axis=(1, 2)))), int(np.argmax(o.any(axis=(0, 2)))))
                for o in out}) > 1


def test_augment_refuses_a_single_image():
    with pytest.raises(ValueError, match=r"for one image use images\[None\]"):
        augment(np.zeros((32, 32, 3), np.uint8), np.random.default_rng(0))


def test_augmented_images_keep_each_label_with_its_image(real_data):
    (x, y), _ = real_data
    x, y = x[:1000], y[:1000]
    data = AugmentedImages(x, y, batch_size=300, seed=1, augment=False)
    assert len(data) == 4
    batches = [data[i] for i in range(len(data))]
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    assert images.dtype == np.float32 and 0 <= images.min() and images.max() <= 1
    assert labels.shape == (1000, 10) and np.all(labels.sum(axis=1) == 1)       # one-hot
    lookup = {x[i].tobytes(): y[i, 0] for i in range(len(x))}
    as_uint8 = np.rint(images * 255).astype(np.uint8)
    assert len({img.tobytes() for img in as_uint8}) == 1000                     # each image once
    assert all(lookup[img.tobytes()] == lab for img, lab in zip(as_uint8, labels.argmax(axis=1)))
    # with augmentation, the labels still follow their images (flips and shifts keep the class)
    aug = AugmentedImages(x, y, batch_size=1000, seed=2)
    xa, ya = aug[0]
    order = np.sort(aug.order)
    assert np.array_equal(ya.argmax(axis=1), y[order, 0])
    first_order = data.order.copy()
    data.on_epoch_end()
    assert not np.array_equal(first_order, data.order)          # a new order every epoch
    with pytest.raises(ValueError, match="999 labels"):
        AugmentedImages(x, y[:999], batch_size=10)


def test_the_recipe_learns_from_real_images(real_data):
    (x_raw, y_raw), _ = real_data
    x_val, y_val = convert_data_format(x_raw[8192:8704], y_raw[8192:8704])
    model = build_fast_model(seed=0)
    model.compile(optimizer=one_cycle_sgd(0.2, 2 * 32), metrics=["accuracy"],
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.2))
    history = model.fit(AugmentedImages(x_raw[:8192], y_raw[:8192], 256, seed=0), epochs=2,
                        validation_data=(x_val, y_val), verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]
    assert history.history["val_accuracy"][-1] > 0.2             # chance is 0.1


def _windows(image, pad=2):
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    size = image.shape[0]
    return [padded[dy:dy + size, dx:dx + size] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]


def test_augment_without_flip_or_shift(real_data):
    (x, _), _ = real_data
    batch = x[:256]
    assert np.array_equal(augment(batch, np.random.default_rng(0), pad=0, flip=False), batch)
    flipped_only = augment(batch, np.random.default_rng(0), pad=0)
    mirrored = [np.array_equal(o, b[:, ::-1]) and not np.array_equal(o, b) for o, b in zip(flipped_only, batch)]
    assert 0.35 * len(batch) < sum(mirrored) < 0.65 * len(batch)
    shifted_only = augment(batch, np.random.default_rng(0), flip=False)
    for o, b in zip(shifted_only[:64], batch[:64]):          # a shifted window of the original itself
        assert any(np.array_equal(o, w) for w in _windows(b))
