"""Notebook 05's experiments: the ablation as data, the one network builder, what the final
recipe costs and how it trains, the augmentation, and the patch-whitening first layer."""
import keras
import numpy as np
import pytest

from helpers import build_article_model, convert_data_format
from helpers.further import (ABLATION, ARTICLE, RECIPE, AugmentedImages, BiasScaledSGD, ablation_configs, augment,
                             identity_kernel, restart_network,
                             build_network, compile_network, count_macs, layer_macs, one_cycle_sgd,
                             whitening_filters)

ARTICLE_MACS = 32 * 32 * 27 * 32 + 32 * 32 * 288 * 32 + 32_768 * 500 + 500 * 10
RECIPE_MACS = (31 * 31 * (2 * 2 * 3) * 24          # fixed whitening layer, 2x2, valid: 31x31
               + 31 * 31 * 9 * 24 * 48             # block 1a at 31x31, then pooled to 15x15
               + 15 * 15 * 9 * 48 * 48             # block 1b
               + 15 * 15 * 9 * 48 * 192 + 7 * 7 * 9 * 192 * 192      # block 2
               + 7 * 7 * 9 * 192 * 192 + 3 * 3 * 9 * 192 * 192      # block 3
               + 192 * 10)
FAKE_WHITENING = (np.zeros((2, 2, 3, 24), np.float32), np.zeros(24, np.float32))


@pytest.fixture(scope="module")
def whitening(real_data):
    (x, _), _ = real_data
    return whitening_filters(x[:45_000])


# --------------------------------------------------------------------------- multiply-adds

def test_the_article_models_multiply_adds_are_counted_layer_by_layer():
    model = build_article_model()
    assert [layer_macs(layer) for layer in model.layers] == [
        32 * 32 * 3 * 3 * 3 * 32, 32 * 32 * 3 * 3 * 32 * 32, 0, 32_768 * 500, 500 * 10]
    assert count_macs(model) == ARTICLE_MACS == 26_710_920


@pytest.mark.parametrize("make", [
    lambda: keras.layers.SeparableConv2D(8, 3), lambda: keras.layers.DepthwiseConv2D(3),
    lambda: keras.layers.Conv2DTranspose(8, 3), lambda: keras.layers.Conv2D(6, 3, groups=3),
    lambda: keras.layers.Conv1D(8, 3)], ids=["separable", "depthwise", "transposed", "grouped", "conv1d"])
def test_count_macs_refuses_a_layer_with_weights_it_cannot_count(make):
    layer = make()
    shape = (16, 3) if isinstance(layer, keras.layers.Conv1D) else (16, 16, 3)
    model = keras.Sequential([keras.Input(shape), layer])
    with pytest.raises(ValueError, match="(does not know how to count|cannot count)"):
        count_macs(model)


def test_count_macs_refuses_channels_first():
    layer = keras.layers.Conv2D(8, 3, data_format="channels_first")
    keras.Sequential([keras.Input((3, 16, 16)), layer])
    with pytest.raises(ValueError, match="channels-last"):
        layer_macs(layer)


def test_layers_without_weights_and_normalisations_cost_nothing():
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.BatchNormalization(),
                              keras.layers.MaxPooling2D(), keras.layers.ReLU(), keras.layers.Flatten()])
    assert [layer_macs(layer) for layer in model.layers] == [0, 0, 0, 0]


# --------------------------------------------------------------------------- the ablation as data

def test_every_ablation_row_changes_exactly_the_settings_it_names():
    configs = ablation_configs()
    assert configs["A"] == ARTICLE
    assert [row for row, *_ in ABLATION][0] == "A" and len({row for row, *_ in ABLATION}) == len(ABLATION)
    for row, label, base, changes in ABLATION[1:]:
        assert base in configs and [r for r, *_ in ABLATION].index(base) < [r for r, *_ in ABLATION].index(row)
        differing = {key for key in ARTICLE if configs[row][key] != configs[base][key]}
        assert differing == set(changes), f"row {row} differs from {base} in {differing}, names {set(changes)}"
        if row == "G":       # the one row that changes two settings: they cannot be separated, and it says both
            assert differing == {"optimizer", "learning_rate"} and "SGD" in label and "Adam" in label
            assert "0.05" in label
        else:
            assert len(differing) == 1, f"row {row} changes {sorted(differing)}"


def test_ablation_rows_answer_the_open_questions():
    configs = ablation_configs()
    rows = {row: (base, changes) for row, _, base, changes in ABLATION}
    assert rows["D"] == ("C", {"head": "max"}) and configs["C"]["head"] == "average"   # average vs max, deep body
    assert configs["C"]["body"] == "blocks"
    assert rows["H"] == ("G", {"batch_norm": True})                 # batch norm at the old learning rate...
    assert rows["I"] == ("H", {"logit_scale": 0.125})               # (logits scaled down, as airbench)
    assert rows["J"] == ("I", {"learning_rate": 0.4})               # ...then with the larger one it allows
    assert rows["J0"] == ("J", {"batch_norm": False})               # and the larger one without it
    assert configs["J0"]["learning_rate"] == 0.4 and not configs["J0"]["batch_norm"]
    assert rows["K"][1] == {"weight_decay": 5e-4}                   # weight decay on, at its documented strength
    assert rows["O1"] == ("O", {"bias_lr_scale": 64.0})             # airbench's faster batch-norm biases, tried
    assert rows["P"] == ("O", {"identity_init": True})              # and the identity start, from O, not O1
    assert rows["Q"] == ("P", {"learning_rate": 0.8})               # then twice the peak rate


def test_the_recipe_is_the_last_row():
    assert RECIPE == ablation_configs()[ABLATION[-1][0]]
    assert RECIPE["weight_decay"] == 5e-4 and RECIPE["batch_size"] == 512
    assert RECIPE["optimizer"] == "sgd" and RECIPE["learning_rate"] == 0.8
    assert RECIPE["first_layer"] == "whitening" and RECIPE["widths"] == (48, 192, 192)
    assert RECIPE["augment"] and RECIPE["label_smoothing"] == 0.2 and RECIPE["batch_norm"]
    assert RECIPE["logit_scale"] == 0.125
    assert RECIPE["identity_init"] and RECIPE["bias_lr_scale"] == 1.0


def test_ablation_configs_refuses_an_unknown_setting(monkeypatch):
    monkeypatch.setattr("helpers.further.ABLATION", ABLATION + [("Z", "typo", "O", {"widht": 3})])
    with pytest.raises(ValueError, match="widht"):
        ablation_configs()


# --------------------------------------------------------------------------- building and compiling

def test_row_a_is_the_article_model_layer_for_layer(real_data):
    article, rebuilt = build_article_model(seed=1), build_network(ARTICLE, seed=2)
    weighted = [(lay for lay in m.layers if lay.weights) for m in (article, rebuilt)]
    pairs = list(zip(*weighted))
    assert len(pairs) == 4
    for a, b in pairs:
        assert type(a) is type(b)
        assert [w.shape for w in a.weights] == [w.shape for w in b.weights]
        assert type(a.kernel_constraint) is type(b.kernel_constraint)
        if a.name == "softmax_out":
            assert a.kernel_constraint is None and a.activation is b.activation is keras.activations.softmax
        else:
            assert type(a.kernel_constraint) is keras.constraints.MaxNorm
            assert a.kernel_constraint.max_value == b.kernel_constraint.max_value == 3
            assert a.kernel_constraint.axis == b.kernel_constraint.axis
        b.set_weights(a.get_weights())
    (x, _), _ = real_data
    images = x[:64].astype("float32") / 255
    np.testing.assert_allclose(rebuilt.predict(images, verbose=0), article.predict(images, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_the_recipe_network_is_the_documented_stack(whitening):
    model = build_network(RECIPE, whitening=whitening)
    assert count_macs(model) == RECIPE_MACS == 69_070_368
    convs = [lay for lay in model.layers if isinstance(lay, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size, c.padding) for c in convs] == [(24, (2, 2), "valid")] + [
        (w, (3, 3), "same") for w in (48, 48, 192, 192, 192, 192)]
    assert not convs[0].trainable and all(c.trainable and not c.use_bias for c in convs[1:])
    assert sum(isinstance(lay, keras.layers.BatchNormalization) for lay in model.layers) == 6
    assert all(not lay.scale for lay in model.layers if isinstance(lay, keras.layers.BatchNormalization))
    assert sum(isinstance(lay, keras.layers.MaxPooling2D) for lay in model.layers) == 3
    assert isinstance(model.layers[-4], keras.layers.GlobalMaxPooling2D)
    logits, scale, softmax = model.layers[-3:]                 # Dense -> x 1/8 -> softmax
    assert logits.activation is keras.activations.linear and logits.units == 10
    assert isinstance(scale, keras.layers.Rescaling) and scale.scale == 0.125
    assert isinstance(softmax, keras.layers.Softmax) and model.output_shape == (None, 10)
    kernel, bias = convs[0].get_weights()
    assert np.array_equal(kernel, whitening[0]) and np.array_equal(bias, whitening[1])
    assert all(c.kernel_constraint is None for c in convs)


def test_each_rows_network_costs_what_its_settings_say(whitening):
    configs = ablation_configs()
    macs = {row: count_macs(build_network(configs[row], whitening=whitening)) for row in configs}
    assert macs["A"] == ARTICLE_MACS
    assert macs["B"] == 32 * 32 * 27 * 32 + 32 * 32 * 288 * 32 + 32 * 10          # no Dense(500)
    small = (32 * 32 * 27 * 24 + 32 * 32 * 9 * 24 * 32 + 16 * 16 * 9 * 32 * 32 + 16 * 16 * 9 * 32 * 64
             + 8 * 8 * 9 * 64 * 64 + 8 * 8 * 9 * 64 * 128 + 4 * 4 * 9 * 128 * 128 + 128 * 10)
    assert all(macs[row] == small for row in "CDEFGHIJKLM") and macs["J0"] == small
    assert macs["N"] == (31 * 31 * 12 * 24 + 31 * 31 * 9 * 24 * 32 + 15 * 15 * 9 * 32 * 32 + 15 * 15 * 9 * 32 * 64
                         + 7 * 7 * 9 * 64 * 64 + 7 * 7 * 9 * 64 * 128 + 3 * 3 * 9 * 128 * 128 + 128 * 10)
    assert macs["O"] == macs["O1"] == macs["P"] == macs["Q"] == RECIPE_MACS
    with_bn = build_network(configs["H"])
    assert sum(isinstance(lay, keras.layers.BatchNormalization) for lay in with_bn.layers) == 7
    assert not any(isinstance(lay, keras.layers.BatchNormalization) for lay in build_network(configs["G"]).layers)
    pooling = {row: type(build_network(configs[row]).layers[-2]).__name__ for row in "BCD"}
    assert pooling == {"B": "GlobalAveragePooling2D", "C": "GlobalAveragePooling2D", "D": "GlobalMaxPooling2D"}


def test_weight_decay_is_an_l2_penalty_of_5e_4_on_every_kernel(whitening):
    model = build_network(RECIPE, whitening=whitening, seed=0)
    trained = [lay for lay in model.layers if getattr(lay, "kernel", None) is not None and lay.trainable]
    assert len(trained) == 7
    for layer in trained:
        assert isinstance(layer.kernel_regularizer, keras.regularizers.L2)
        assert layer.kernel_regularizer.get_config()["l2"] == pytest.approx(5e-4)
    model(np.zeros((1, 32, 32, 3), "float32"))
    expected = 5e-4 * sum(float(np.sum(np.square(lay.kernel.numpy()))) for lay in trained)
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-5)
    compile_network(model, RECIPE, total_steps=100)
    assert model.optimizer.weight_decay is None            # no decoupled decay on top of it
    assert build_network(ablation_configs()["J"]).losses == []


def test_compile_network_follows_the_configuration():
    configs = ablation_configs()
    model = compile_network(build_network(configs["A"]), configs["A"], total_steps=10)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert model.loss.get_config()["label_smoothing"] == 0
    model = compile_network(build_network(configs["M"]), configs["M"], total_steps=10, jit_compile=False)
    assert isinstance(model.optimizer, keras.optimizers.SGD) and model.optimizer.nesterov
    assert model.loss.get_config()["label_smoothing"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="unknown optimizer"):
        compile_network(build_network(configs["A"]), {**configs["A"], "optimizer": "rmsprop"}, 10)


def test_build_network_refuses_bad_configurations():
    with pytest.raises(ValueError, match="missing"):
        build_network({k: v for k, v in ARTICLE.items() if k != "head"})
    with pytest.raises(ValueError, match="unknown"):
        build_network({**ARTICLE, "colour": "blue"})
    with pytest.raises(ValueError, match="unknown body"):
        build_network({**ARTICLE, "body": "resnet"})
    with pytest.raises(ValueError, match="whitening=whitening_filters"):
        build_network(RECIPE)
    build_network(RECIPE, whitening=FAKE_WHITENING)            # with weights it builds


def test_one_cycle_rises_to_its_peak_then_falls_to_zero_at_the_last_step():
    opt = one_cycle_sgd(0.2, total_steps=100, warmup_fraction=0.2)
    assert isinstance(opt, keras.optimizers.SGD) and opt.nesterov and opt.momentum == 0.9
    assert opt.weight_decay is None
    schedule = keras.optimizers.schedules.deserialize(opt.get_config()["learning_rate"])
    lr = [float(schedule(step)) for step in (0, 10, 20, 60, 99, 100)]
    assert lr[0] == pytest.approx(0.0, abs=1e-7)
    assert lr[1] == pytest.approx(0.1, rel=1e-4)
    assert lr[2] == pytest.approx(0.2, rel=1e-4)
    assert lr[3] == pytest.approx(0.1, rel=1e-3)
    assert 0 < lr[4] < 1e-3 and lr[5] == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="at least one training step"):
        one_cycle_sgd(0.2, total_steps=0)


# --------------------------------------------------------------------------- identity start and bias rate

def test_identity_init_makes_each_block_convolution_copy_its_input_at_the_start(whitening):
    config = {**RECIPE, "identity_init": True}
    model = build_network(config, whitening=whitening, seed=0)
    plain = build_network({**config, "identity_init": False}, whitening=whitening, seed=0)
    x = np.random.default_rng(0).normal(size=(2, 7, 7, 192)).astype("float32")
    for name in ("block1b_conv", "block2b_conv", "block3b_conv"):          # width in = width out
        layer = model.get_layer(name)
        inputs = x[..., :layer.kernel.shape[2]]
        np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(inputs)), inputs, atol=1e-6)
        assert not np.allclose(keras.ops.convert_to_numpy(plain.get_layer(name)(inputs)), inputs, atol=0.1)
    wider = model.get_layer("block1a_conv")                             # 24 channels in, 48 out
    kernel = keras.ops.convert_to_numpy(wider.kernel)
    out = keras.ops.convert_to_numpy(wider(x[..., :24]))
    np.testing.assert_allclose(out[..., :24], x[..., :24], atol=1e-6)  # the first 24 copy their channel
    assert np.array_equal(kernel[..., 24:], keras.ops.convert_to_numpy(plain.get_layer("block1a_conv").kernel)[..., 24:])
    assert np.abs(kernel[..., 24:]).min() > 0                          # the other 24 keep their random start
    # and a restart starts from the identity again
    compile_network(model, config, total_steps=10, jit_compile=False)
    model.get_layer("block2b_conv").kernel.assign(np.zeros((3, 3, 192, 192), "float32"))
    restart_network(model, config, seed=0, whitening=whitening)
    assert np.array_equal(keras.ops.convert_to_numpy(model.get_layer("block2b_conv").kernel),
                          identity_kernel(np.zeros((3, 3, 192, 192), "float32")))


def test_identity_kernel_is_a_centred_one_per_channel():
    kernel = identity_kernel(np.full((3, 3, 2, 3), 7.0, "float32"))
    expected = np.zeros((3, 3, 2, 2))
    expected[1, 1] = np.eye(2)
    assert np.array_equal(kernel[..., :2], expected) and np.all(kernel[..., 2] == 7.0)


def test_batch_norm_biases_take_steps_bias_lr_scale_times_larger(whitening):
    """Two networks from the same start, trained on the same two batches: the first step has
    learning rate 0 (the warm-up starts there), so the second sees the same gradients in both,
    and only the batch-normalisation biases move 64 times further in the scaled one."""
    rng = np.random.default_rng(0)
    x = rng.random((32, 32, 32, 3)).astype("float32")
    y = keras.utils.to_categorical(np.arange(32) % 10, 10)
    moved = {}
    for scale in (1.0, 64.0):
        config = {**RECIPE, "bias_lr_scale": scale}
        model = compile_network(build_network(config, whitening=whitening, seed=0), config, 10, jit_compile=False)
        start = {v.path: keras.ops.convert_to_numpy(v) for v in model.trainable_variables}
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        moved[scale] = {v.path.split("/", 1)[1]: keras.ops.convert_to_numpy(v) - start[v.path]
                        for v in model.trainable_variables}
    betas = [p for p in moved[1.0] if p.endswith("/beta")]
    assert len(betas) == 6
    for path, step in moved[1.0].items():
        assert np.abs(step).max() > 0, path
        ratio = 64.0 if path in betas else 1.0
        np.testing.assert_allclose(moved[64.0][path], ratio * step, rtol=1e-3, atol=1e-7 * ratio, err_msg=path)


def test_the_bias_scaled_optimiser_survives_saving(tmp_path, whitening):
    config = {**RECIPE, "bias_lr_scale": 64.0}
    model = compile_network(build_network(config, whitening=whitening, seed=0), config, 10, jit_compile=False)
    assert isinstance(model.optimizer, BiasScaledSGD) and model.optimizer.bias_lr_scale == 64.0
    assert sorted(model.optimizer.biases) == sorted(
        v.path for v in model.trainable_variables if v.path.endswith("_bn/beta"))
    model.optimizer.build(model.trainable_variables)        # as fit does: its momenta are saved too
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, BiasScaledSGD)
    assert loaded.optimizer.bias_lr_scale == 64.0 and loaded.optimizer.biases == model.optimizer.biases
    assert type(compile_network(build_network(RECIPE, whitening=whitening), RECIPE, 10).optimizer) is (
        keras.optimizers.SGD if RECIPE["bias_lr_scale"] == 1.0 else BiasScaledSGD)


def test_bias_lr_scale_needs_sgd():
    config = {**ablation_configs()["E"], "bias_lr_scale": 64.0}
    with pytest.raises(ValueError, match="bias_lr_scale is a setting of the SGD"):
        compile_network(build_network(config), config, 10)


# --------------------------------------------------------------------------- patch whitening

def test_whitening_decorrelates_real_patches(real_data, whitening):
    (x, _), _ = real_data
    kernel, bias = whitening
    assert kernel.shape == (2, 2, 3, 24) and bias.shape == (24,)
    assert np.allclose(kernel[..., 12:], -kernel[..., :12]) and np.allclose(bias[12:], -bias[:12])
    images = x[45_000:45_500] / 255.0                        # images the filters were not computed from
    patches = np.lib.stride_tricks.sliding_window_view(images, (2, 2), axis=(1, 2))
    patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(-1, 12)
    out = patches @ kernel.reshape(12, 24)[:, :12] + bias[:12]
    cov = np.cov(out, rowvar=False)
    strong = np.argsort(np.diag(cov))[-6:]                  # directions well above epsilon: unit variance
    assert np.allclose(np.diag(cov)[strong], 1, atol=0.15)
    off = cov - np.diag(np.diag(cov))
    assert np.abs(off).max() < 0.1                           # and uncorrelated with each other
    assert np.abs(out.mean(axis=0)).max() < 0.1              # centred by the bias
    # the convolution computes the same thing as the patch product (kernel layout rows, cols, channel)
    model = build_network(RECIPE, whitening=whitening)
    first = keras.Model(model.inputs, model.get_layer("whitening_conv").output)
    conv = first.predict(images[:2].astype("float32"), verbose=0)
    manual = (patches[:2 * 31 * 31] @ kernel.reshape(12, 24) + bias).reshape(2, 31, 31, 24)
    np.testing.assert_allclose(conv, manual, rtol=1e-3, atol=1e-3)


def test_whitening_filters_refuses_grey_images():
    with pytest.raises(ValueError, match=r"RGB images \(n, rows, columns, 3\)"):
        whitening_filters(np.zeros((10, 32, 32), np.uint8))


# --------------------------------------------------------------------------- augmentation and data

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
            candidates += _windows(img)
        assert any(np.array_equal(o, c) for c in candidates)
    # different images get different shifts: not one offset for the whole batch
    assert len({(int(np.argmax(o.any(axis=(1, 2)))), int(np.argmax(o.any(axis=(0, 2)))))
                for o in out}) > 1


def test_augment_uses_every_shift_from_minus_2_to_plus_2(real_data):
    (x, _), _ = real_data
    batch = x[:400]
    out = augment(batch, np.random.default_rng(3), flip=False)
    seen = set()
    for o, b in zip(out, batch):
        windows = _windows(b)
        match = [i for i, w in enumerate(windows) if np.array_equal(o, w)]
        assert match
        seen.add(divmod(match[0], 5))
    assert seen == {(dy, dx) for dy in range(5) for dx in range(5)}    # all 25 offsets, -2..+2 both ways


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
    config = ablation_configs()["M"]                  # the recipe's settings on the narrow network: fast
    model = build_network(config, whitening=whitening_filters(x_raw[:5000]), seed=0)
    compile_network(model, config, total_steps=3 * 32)
    history = model.fit(AugmentedImages(x_raw[:8192], y_raw[:8192], 256, seed=0), epochs=3,
                        validation_data=(x_val, y_val), verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]
    assert history.history["val_accuracy"][-1] > 0.25             # chance is 0.1


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



def test_the_recipe_scales_its_logits_by_one_eighth(whitening):
    model = build_network(RECIPE, whitening=whitening, seed=0)
    # the softmax sees the logits divided by 8: the probabilities are softmax(Dense(x) / 8)
    x = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    logits = keras.Model(model.inputs[0], model.get_layer("logits").output)(x).numpy()
    expected = np.exp(logits / 8) / np.exp(logits / 8).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert [lay.name for lay in build_network(ablation_configs()["H"]).layers][-1] == "softmax_out"
    assert "logits" not in [lay.name for lay in build_network(ablation_configs()["H"]).layers]


@pytest.mark.parametrize("row", ["E", "J"])   # Adam at a constant rate; SGD with momentum and a schedule
def test_restart_network_starts_a_compiled_network_again_from_another_seed(whitening, row):
    config = ablation_configs()[row]
    rng = np.random.default_rng(0)
    x = rng.random((64, 32, 32, 3), dtype=np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 10, 64), 10)
    used = compile_network(build_network(config, seed=0), config, total_steps=4, jit_compile=False)
    used.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)   # weights, momentum, BN statistics move
    assert int(used.optimizer.iterations) == 4
    restart_network(used, config, seed=1)
    fresh = compile_network(build_network(config, seed=1), config, total_steps=4, jit_compile=False)
    for a, b in zip(used.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(used.optimizer.iterations) == 0
    state = [v for v in used.optimizer.variables if v.name != "learning_rate"]
    assert all(not np.any(keras.ops.convert_to_numpy(v)) for v in state)
    assert float(used.optimizer.learning_rate) == pytest.approx(float(fresh.optimizer.learning_rate))
    # and it trains as the fresh network does, step for step
    for model in (used, fresh):
        model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(used.predict(x, verbose=0), fresh.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    assert not np.allclose(used.predict(x, verbose=0), build_network(config, seed=1).predict(x, verbose=0))  # it learnt
    with pytest.raises(ValueError, match="not the one this configuration builds"):
        restart_network(used, ablation_configs()["O"], seed=0, whitening=whitening)
