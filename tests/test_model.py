"""The article's model: its exact structure, and a real train / checkpoint / reload cycle."""
import json

import keras
import numpy as np
import pytest

from helpers import BestModelCheckpoint, build_article_model, convert_data_format


def test_parameter_counts_match_the_article():
    model = build_article_model()
    counts = [(layer.name, layer.count_params()) for layer in model.layers]
    assert counts == [("conv_1", 896), ("conv_2", 9_248), ("flatten", 0),
                      ("dense_500", 16_384_500), ("softmax_out", 5_010)]
    assert model.count_params() == 16_399_654
    assert model.output_shape == (None, 10)
    assert model.layers[2].output.shape == (None, 32_768)


def test_every_call_builds_a_fresh_model_and_seed_fixes_the_weights():
    a, b = build_article_model(seed=7), build_article_model(seed=7)
    assert len(a.layers) == len(b.layers) == 5
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert np.array_equal(wa, wb)
    c = build_article_model(seed=8)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_model_is_compiled_as_the_article_says():
    model = build_article_model()
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert model.loss == "categorical_crossentropy"
    assert model.layers[-1].activation is keras.activations.softmax
    assert isinstance(model.layers[0].kernel_constraint, keras.constraints.MaxNorm)
    assert model.layers[0].kernel_constraint.max_value == 3


def test_checkpoint_and_history_are_written_and_reload_identically(real_data, tmp_path):
    """The series' own BestModelCheckpoint on real images: the file holds exactly the epoch with
    the lowest validation loss, whichever epoch that is."""
    (x_raw, y_raw), _ = real_data
    x, y = convert_data_format(x_raw[:640], y_raw[:640])
    model = build_article_model(seed=0)
    path, hist_path = tmp_path / "best_model.keras", tmp_path / "history.json"
    per_epoch = []                                     # what the model predicted after each epoch
    remember = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: per_epoch.append(model.predict(x[512:], verbose=0)))
    history = model.fit(x[:512], y[:512], validation_data=(x[512:], y[512:]), epochs=3,
                        batch_size=64, verbose=0,
                        callbacks=[remember, BestModelCheckpoint(path, hist_path, verbose=0)])
    saved = json.loads(hist_path.read_text())
    assert set(saved) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in saved.values())
    assert saved["val_loss"] == pytest.approx(history.history["val_loss"])
    best = int(np.argmin(saved["val_loss"]))
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded.predict(x[512:], verbose=0), per_epoch[best],
                               rtol=1e-5, atol=1e-6)
    loss, _ = reloaded.evaluate(x[512:], y[512:], verbose=0)
    assert np.isclose(loss, saved["val_loss"][best], rtol=1e-4)
