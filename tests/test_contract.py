"""What the series teaches, pinned: every layer of the article's model and how it is compiled,
notebook 05's final model, and the data contract (labels stay with their images; the loader
unpickles exactly what a CIFAR-10 batch needs and nothing else)."""
import io
import pickle

import keras
import numpy as np
import pytest

from helpers import (CIFAR10DataError, build_article_model, get_settings, load_best_model,
                     load_cifar10, split_train_val)
from helpers.data import _ALLOWED_GLOBALS, _BatchUnpickler
from helpers.further import RECIPE, build_network, compile_network, one_cycle_sgd

_ZERO_WHITENING = (np.zeros((2, 2, 3, 24), "float32"), np.zeros(24, "float32"))

# ------------------------------------------------------------- the article's model


def _describe(layer):
    """Everything the article specifies about a layer, as plain values."""
    out = {"type": type(layer).__name__, "name": layer.name}
    if isinstance(layer, keras.layers.Conv2D):
        out.update(filters=layer.filters, kernel=layer.kernel_size, padding=layer.padding,
                   strides=layer.strides, bias=layer.use_bias)
    if isinstance(layer, keras.layers.Dense):
        out.update(units=layer.units, bias=layer.use_bias)
    if hasattr(layer, "activation"):
        out["activation"] = layer.activation.__name__
    constraint = getattr(layer, "kernel_constraint", None)
    if constraint is not None:
        out["constraint"] = (type(constraint).__name__, constraint.get_config())
    return out


MAXNORM_3 = ("MaxNorm", {"max_value": 3, "axis": 0})


def test_every_layer_of_the_articles_model():
    assert [_describe(layer) for layer in build_article_model().layers] == [
        {"type": "Conv2D", "name": "conv_1", "filters": 32, "kernel": (3, 3), "padding": "same",
         "strides": (1, 1), "bias": True, "activation": "relu", "constraint": MAXNORM_3},
        {"type": "Conv2D", "name": "conv_2", "filters": 32, "kernel": (3, 3), "padding": "same",
         "strides": (1, 1), "bias": True, "activation": "relu", "constraint": MAXNORM_3},
        {"type": "Flatten", "name": "flatten"},
        {"type": "Dense", "name": "dense_500", "units": 500, "bias": True, "activation": "relu",
         "constraint": MAXNORM_3},
        {"type": "Dense", "name": "softmax_out", "units": 10, "bias": True, "activation": "softmax"},
    ]


def test_the_articles_model_is_compiled_with_adams_defaults_cross_entropy_and_accuracy():
    config = build_article_model().get_compile_config()
    optimizer = config["optimizer"]
    assert optimizer["class_name"] == "Adam"
    hyper = optimizer["config"]
    assert hyper["learning_rate"] == pytest.approx(1e-3)
    assert (hyper["beta_1"], hyper["beta_2"], hyper["epsilon"], hyper["amsgrad"]) == (0.9, 0.999, 1e-7, False)
    assert hyper["weight_decay"] is None and hyper["clipnorm"] is None
    assert config["loss"] == "categorical_crossentropy"
    assert config["metrics"] == ["accuracy"]


def _article_layers():
    return [_describe(layer) for layer in build_article_model().layers]


def test_each_option_of_the_article_builder_changes_one_thing():
    """The options the exercises and notebook 05 use; their defaults are the article's model."""
    article = _article_layers()
    whole = [_describe(layer) for layer in build_article_model(conv_axis=[0, 1, 2]).layers]
    for got, base in zip(whole, article, strict=True):
        if base["name"] in ("conv_1", "conv_2"):
            assert got == {**base, "constraint": ("MaxNorm", {"max_value": 3, "axis": [0, 1, 2]})}
        else:
            assert got == base                       # Dense(500) keeps MaxNorm(3) on axis 0
    pooled = build_article_model(pooling=True).layers
    assert [layer.name for layer in pooled] == ["conv_1", "pool_1", "conv_2", "pool_2", "flatten",
                                                "dense_500", "softmax_out"]
    assert all(layer.pool_size == (2, 2) and layer.strides == (2, 2)
               for layer in pooled if isinstance(layer, keras.layers.MaxPooling2D))
    assert [_describe(layer) for layer in pooled if "pool" not in layer.name] == article
    averaged = [_describe(layer) for layer in build_article_model(head="average").layers]
    assert averaged == article[:2] + [{"type": "GlobalAveragePooling2D", "name": "global_average"}, article[-1]]
    sgd = build_article_model(optimizer=keras.optimizers.SGD(learning_rate=0.01))
    assert [_describe(layer) for layer in sgd.layers] == article
    assert sgd.get_compile_config()["optimizer"]["class_name"] == "SGD"
    assert not build_article_model(compile=False).compiled
    with pytest.raises(ValueError, match="head must be 'dense500'"):
        build_article_model(head="max")


def test_notebook_05s_article_rows_are_the_article_builder():
    from helpers.further import ablation_configs
    configs = ablation_configs()
    for row, head in (("A", "dense500"), ("B", "average")):
        assert ([_describe(layer) for layer in build_network(configs[row]).layers]
                == [_describe(layer) for layer in build_article_model(head=head).layers]), row
    with pytest.raises(ValueError, match="use body 'blocks'"):
        build_network({**configs["A"], "batch_norm": True})


def test_the_articles_model_gives_probabilities():
    model = build_article_model(seed=0)
    probs = keras.ops.convert_to_numpy(model(np.random.default_rng(0).random((4, 32, 32, 3), np.float32)))
    assert probs.shape == (4, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


# ------------------------------------------------------------- notebook 05's final model


def test_every_layer_of_the_final_model():
    layers = [_describe(layer) for layer in build_network(RECIPE, whitening=_ZERO_WHITENING).layers]
    convs = [(d["name"], d["filters"], d["kernel"], d["padding"], d["bias"], d["activation"])
             for d in layers if d["type"] == "Conv2D"]
    assert convs == [("whitening_conv", 24, (2, 2), "valid", True, "linear")] + [
        (name, w, (3, 3), "same", False, "linear") for name, w in [
            ("block1a_conv", 48), ("block1b_conv", 48), ("block2a_conv", 192),
            ("block2b_conv", 192), ("block3a_conv", 192), ("block3b_conv", 192)]]
    order = [d["type"] for d in layers]
    block = ["Conv2D", "MaxPooling2D", "BatchNormalization", "ReLU", "Conv2D", "BatchNormalization", "ReLU"]
    assert order == ["Conv2D", "ReLU"] + block * 3 + ["GlobalMaxPooling2D", "Dense", "Rescaling", "Softmax"]
    assert layers[-3] == {"type": "Dense", "name": "logits", "units": 10, "bias": True,
                          "activation": "linear"}              # the logits, divided by 8, then the softmax
    model = build_network(RECIPE, whitening=_ZERO_WHITENING)
    assert model.get_layer("logit_scale").scale == 0.125 and model.layers[-1].name == "softmax_out"
    model = build_network(RECIPE, whitening=_ZERO_WHITENING)
    assert all(layer.momentum == 0.9 and not layer.scale and layer.center
               for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    assert all(layer.pool_size == (2, 2) for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D))
    assert not model.get_layer("whitening_conv").trainable


def test_the_recipes_weight_decay_is_the_usual_coupled_l2():
    """Weight decay as an L2 penalty 5e-4 x sum(w^2) in the loss (coupled: its gradient, 2 x 5e-4 x w,
    goes through the momentum like any other; twice the ResNet papers' coupled 5e-4), and no
    decoupled weight_decay= in the optimiser on top of it."""
    model = build_network(RECIPE, whitening=_ZERO_WHITENING, seed=0)
    compile_network(model, RECIPE, total_steps=10)
    assert model.optimizer.get_config()["weight_decay"] is None
    kernels = [layer for layer in model.layers if getattr(layer, "kernel", None) is not None and layer.trainable]
    assert [layer.name for layer in kernels] == [
        "block1a_conv", "block1b_conv", "block2a_conv", "block2b_conv", "block3a_conv", "block3b_conv", "logits"]
    for layer in kernels:
        w = keras.ops.convert_to_numpy(layer.kernel)
        assert float(layer.kernel_regularizer(layer.kernel)) == pytest.approx(5e-4 * float(np.sum(w ** 2)), rel=1e-5)
    schedule = keras.optimizers.schedules.deserialize(one_cycle_sgd(0.4, 10).get_config()["learning_rate"])
    assert float(schedule(10)) == pytest.approx(0.0, abs=1e-7)


# ------------------------------------------------------------- labels stay with their images


@pytest.mark.parametrize("mode", ["full", "class", "quick"])
def test_every_split_keeps_labels_with_their_images(real_data, monkeypatch, mode):
    monkeypatch.setenv("CIFAR10_QUICK", "1" if mode == "quick" else "0")
    monkeypatch.setenv("CIFAR10_CLASS", "1" if mode == "class" else "0")
    settings = get_settings()
    assert settings.mode == mode
    (x, y), _ = real_data
    (x_tr, y_tr), (x_val, y_val) = split_train_val(x, y, settings)
    assert (len(x_tr), len(x_val)) == (settings.n_train, settings.n_val)
    assert len(y_tr) == len(x_tr) and len(y_val) == len(x_val)
    # training: the first n_train images with their own labels; validation: the last n_val
    assert np.array_equal(x_tr, x[:settings.n_train]) and np.array_equal(y_tr, y[:settings.n_train])
    assert np.array_equal(x_val, x[-settings.n_val:]) and np.array_equal(y_val, y[-settings.n_val:])
    # and no image is in both
    train_keys = {img.tobytes() for img in x_tr[:2000]}
    assert not any(img.tobytes() in train_keys for img in x_val)


def test_loaded_labels_belong_to_their_images(batch_dir, real_data):
    """Image k of the loaded training set carries label k of the file it came from."""
    (x, y), (xt, yt) = real_data
    with open(batch_dir / "data_batch_2", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    for k in (0, 1, 4_321, 9_999):
        image = raw[b"data"][k].reshape(3, 32, 32).transpose(1, 2, 0)
        assert np.array_equal(x[10_000 + k], image) and y[10_000 + k, 0] == raw[b"labels"][k]
    with open(batch_dir / "test_batch", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    assert np.array_equal(yt.ravel(), np.asarray(raw[b"labels"]))


# ------------------------------------------------------------- what the unpickler accepts


def test_the_unpickler_accepts_exactly_the_four_globals_a_batch_needs():
    assert _ALLOWED_GLOBALS == {("numpy.core.multiarray", "_reconstruct"),
                                ("numpy._core.multiarray", "_reconstruct"),
                                ("numpy", "ndarray"), ("numpy", "dtype")}
    unpickler = _BatchUnpickler(io.BytesIO(b""), "test")
    assert unpickler.find_class("numpy.core.multiarray", "_reconstruct") is \
        np._core.multiarray._reconstruct
    assert unpickler.find_class("numpy", "ndarray") is np.ndarray
    assert unpickler.find_class("numpy", "dtype") is np.dtype


@pytest.mark.parametrize("module, name", [
    ("numpy", "load"),                      # loads another pickle, unchecked
    ("numpy", "loadtxt"), ("numpy", "fromfile"), ("numpy", "frombuffer"), ("numpy", "save"),
    ("numpy.lib.npyio", "load"), ("numpy.ctypeslib", "load_library"),
    ("numpy.testing._private.utils", "runstring"),   # exec()s a string
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct_other"), ("numpy", "ndarrayx"),
    ("builtins", "eval"), ("os", "system"), ("posix", "system"), ("subprocess", "Popen"),
])
def test_the_unpickler_refuses_every_other_global(module, name):
    with pytest.raises(CIFAR10DataError, match=rf"refused to unpickle it, because it references '{module}.{name}'"):
        _BatchUnpickler(io.BytesIO(b""), "data_batch_1").find_class(module, name)


def test_a_batch_that_calls_numpy_load_is_refused_end_to_end(copy_with):
    class CallsNumpyLoad:
        def __reduce__(self):
            return (np.load, ("/etc/passwd",))

    evil = pickle.dumps({b"data": np.zeros((10_000, 3072), np.uint8), b"labels": CallsNumpyLoad()},
                        protocol=3)
    with pytest.raises(CIFAR10DataError, match=r"refused to unpickle.*'numpy.load'"):
        load_cifar10(copy_with({"data_batch_1": evil}))


# ------------------------------------------------------------- what notebook 04 accepts


@pytest.mark.parametrize("outputs", [100, 2])
def test_a_model_with_the_wrong_number_of_classes_is_refused(monkeypatch, tmp_path, outputs):
    monkeypatch.setenv("CIFAR10_ARTIFACTS", str(tmp_path))
    settings = get_settings()
    cifar100 = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
                                 keras.layers.Dense(outputs, activation="softmax")])
    settings.artifacts.mkdir(parents=True, exist_ok=True)
    cifar100.save(settings.model_path)
    with pytest.raises(ValueError, match=rf"gives outputs \(None, {outputs}\).*CIFAR-10 needs "
                                         r"\(None, 32, 32, 3\) -> \(None, 10\)"):
        load_best_model(settings)


# ------------------------------------------------- notebooks 03 and 04 feed Keras batches


def _code_cells(name):
    import json
    from pathlib import Path
    nb = json.loads((Path(__file__).resolve().parent.parent / "notebooks" / name).read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def test_notebooks_03_and_04_never_hold_the_training_set_as_float32():
    """The per-student memory peak (docs/classroom-server.md) rests on this: notebook 03 trains and
    notebook 04 evaluates from helpers.ImageBatches, and neither converts the training set at once."""
    nb03, nb04 = _code_cells("03_model_building_and_training.ipynb"), _code_cells("04_model_validation.ipynb")
    for cells in (nb03, nb04):
        assert not any("convert_data_format(x_train_raw" in c or "convert_data_format(x_all" in c for c in cells)
    data_cell = next(c for c in nb03 if "split_train_val(" in c)
    assert "helpers.split_train_val(x_train_raw, y_train_raw, settings)" in data_cell
    assert ("train_batches = helpers.ImageBatches(x_train, y_train, settings.batch_size, shuffle=True, "
            "seed=settings.seed)") in data_cell
    (fit_cell,) = [c for c in nb03 if ".fit(" in c]
    assert "model.fit(train_batches, validation_data=(x_val, y_val), epochs=settings.epochs," in fit_cell
    (evaluate_cell,) = [c for c in nb04 if ".evaluate(" in c]
    assert "helpers.ImageBatches(x, y, batch_size=500)" in evaluate_cell
    assert "model.evaluate(batches," in evaluate_cell
