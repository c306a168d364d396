"""What notebook 03 leaves for notebook 04 must survive interruptions, re-runs and mistakes:
the checkpoint is never half-written, an earlier run's model is kept, quick mode never
touches a full-mode model, and notebook 04 refuses anything that is not this series' model."""
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from helpers import (BestModelCheckpoint, MissingArtifactError, build_article_model,
                     convert_data_format, get_settings, load_best_model, load_history,
                     save_history, save_model_atomically)

pytestmark = pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")

HISTORY = {"loss": [1.5, 1.1, 0.9], "accuracy": [0.45, 0.6, 0.7],
           "val_loss": [1.3, 1.2, 1.25], "val_accuracy": [0.5, 0.58, 0.57]}


@pytest.fixture
def settings(monkeypatch, tmp_path):
    monkeypatch.setenv("CIFAR10_ARTIFACTS", str(tmp_path))
    monkeypatch.setenv("CIFAR10_QUICK", "1")
    return get_settings()


@pytest.fixture(scope="module")
def test_images(real_data):
    _, (x_test, y_test) = real_data
    return convert_data_format(x_test[:64], y_test[:64])


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_an_interrupted_save_leaves_the_previous_checkpoint_usable(settings, test_images):
    x, _ = test_images
    first = build_article_model(seed=1)
    save_model_atomically(first, settings.model_path)
    expected = first.predict(x, verbose=0)

    second = build_article_model(seed=2)
    real_save = second.save

    def save_then_interrupt(path, *args, **kwargs):   # Ctrl-C halfway through writing the file
        real_save(path, *args, **kwargs)
        with open(path, "r+b") as f:
            f.truncate(f.seek(0, 2) // 2)
        raise KeyboardInterrupt

    object.__setattr__(second, "save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_model_atomically(second, settings.model_path)

    reloaded = load_best_model(settings)               # still the first model, complete
    np.testing.assert_array_equal(reloaded.predict(x, verbose=0), expected)
    assert _leftovers(settings.artifacts) == []         # the half-written temp file is gone


def test_the_checkpoint_holds_the_epoch_with_the_lowest_validation_loss(settings, real_data):
    (x_raw, y_raw), _ = real_data
    x, y = convert_data_format(x_raw[:800], y_raw[:800])
    (x_tr, y_tr), (x_val, y_val) = (x[:512], y[:512]), (x[512:], y[512:])
    model = build_article_model(seed=settings.seed)
    checkpoint = BestModelCheckpoint(settings.model_path, settings.history_path, verbose=0)
    history = model.fit(x_tr, y_tr, validation_data=(x_val, y_val), epochs=3, batch_size=32,
                        callbacks=[checkpoint], verbose=0).history
    best = int(np.argmin(history["val_loss"]))
    assert checkpoint.best_epoch == best + 1
    reloaded = load_best_model(settings)
    score = reloaded.evaluate(x_val, y_val, batch_size=32, verbose=0, return_dict=True)
    assert score["loss"] == pytest.approx(history["val_loss"][best], rel=1e-4)
    # weights only (notebook 05 predicts with it): the same predictions, no optimiser state
    light = load_best_model(settings, compile=False)
    assert not light.compiled and reloaded.compiled and reloaded.optimizer.variables
    np.testing.assert_allclose(light.predict(x_val[:32], verbose=0), reloaded.predict(x_val[:32], verbose=0),
                               rtol=1e-6, atol=1e-7)
    saved = load_history(settings)                  # what notebook 04 plots: this very run
    assert saved.keys() == history.keys()
    for key in history:
        assert saved[key] == pytest.approx(history[key])
    assert _leftovers(settings.artifacts) == []


def test_only_improvements_are_saved(settings):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
    checkpoint = BestModelCheckpoint(settings.model_path, verbose=0)
    checkpoint.set_model(model)
    for epoch, (val_loss, fill) in enumerate([(1.0, 1.0), (0.8, 2.0), (0.9, 3.0), (0.85, 4.0)]):
        model.set_weights([np.full((4, 2), fill, "float32"), np.zeros(2, "float32")])
        checkpoint.on_epoch_end(epoch, {"val_loss": val_loss})
    assert (checkpoint.best, checkpoint.best_epoch) == (0.8, 2)
    saved = keras.models.load_model(settings.model_path)
    assert saved.get_layer("d").get_weights()[0][0, 0] == 2.0   # epoch 2's weights


def test_an_earlier_runs_model_is_kept_as_previous(settings):
    def model_filled_with(value):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
        model.set_weights([np.full((4, 2), value, "float32"), np.zeros(2, "float32")])
        return model

    def weight(path):
        return keras.models.load_model(path).get_layer("d").get_weights()[0][0, 0]

    run_1 = BestModelCheckpoint(settings.model_path, settings.history_path, verbose=0)
    run_1.set_model(model_filled_with(1.0))
    run_1.on_train_begin()
    run_1.on_epoch_end(0, {"val_loss": 0.5})             # an hour of training, say
    assert not run_1.previous_path.exists()

    run_2 = BestModelCheckpoint(settings.model_path, settings.history_path, verbose=0)  # a re-run
    run_2.on_train_begin()
    for epoch, value in enumerate([2.0, 3.0]):
        run_2.set_model(model_filled_with(value))
        run_2.on_epoch_end(epoch, {"val_loss": 1.0 - epoch * 0.1})
    assert weight(settings.model_path) == 3.0
    assert load_history(settings) == {"val_loss": [1.0, 0.9]}
    assert run_2.previous_path.name == "best_model.previous.keras"
    assert weight(run_2.previous_path) == 1.0              # run 1's model, not run 2's first epoch
    previous_history = settings.artifacts / "history.previous.json"
    assert json.loads(previous_history.read_text()) == {"val_loss": [0.5]}


def test_a_checkpoint_without_validation_data_says_what_to_pass(settings, real_data):
    (x_raw, y_raw), _ = real_data
    x, y = convert_data_format(x_raw[:64], y_raw[:64])
    model = build_article_model(seed=0)
    with pytest.raises(KeyError, match=r"monitors 'val_loss'.*Pass validation_data=\(x_val, y_val\)"):
        model.fit(x, y, epochs=1, batch_size=32, verbose=0,
                  callbacks=[BestModelCheckpoint(settings.model_path, verbose=0)])
    assert not settings.model_path.exists()


def test_missing_artifacts_name_the_notebook_that_writes_them(settings):
    with pytest.raises(MissingArtifactError, match=r"best_model.keras not found.*Run 03_model.*"
                                                   r"CIFAR10_QUICK=1 make run"):
        load_best_model(settings)
    with pytest.raises(MissingArtifactError, match=r"history.json not found"):
        load_history(settings)


def test_history_round_trip(settings):
    save_history({k: np.float32(v) for k, v in HISTORY.items()}, settings.history_path)
    loaded = load_history(settings)
    assert loaded.keys() == HISTORY.keys()
    for key, values in HISTORY.items():
        assert loaded[key] == pytest.approx(values)
    assert json.loads(settings.history_path.read_text()) == loaded
    assert _leftovers(settings.artifacts) == []


def test_a_model_of_the_wrong_shape_is_refused(settings):
    settings.artifacts.mkdir(parents=True)
    mnist_like = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                   keras.layers.Dense(10, activation="softmax")])
    mnist_like.save(settings.model_path)
    with pytest.raises(ValueError, match=r"takes inputs \(None, 28, 28, 1\).*CIFAR-10 needs "
                                         r"\(None, 32, 32, 3\) -> \(None, 10\).*re-run notebook 03"):
        load_best_model(settings)


def test_a_damaged_checkpoint_is_refused_with_a_clear_message(settings):
    model = build_article_model(seed=0)
    save_model_atomically(model, settings.model_path)
    data = settings.model_path.read_bytes()
    settings.model_path.write_bytes(data[: len(data) // 3])      # e.g. written by a crashed save
    with pytest.raises(ValueError, match=r"best_model.keras could not be read as a Keras model.*"
                                         r"re-run notebook 03.*best_model.previous.keras"):
        load_best_model(settings)


def test_quick_mode_never_writes_where_full_mode_keeps_its_model(monkeypatch, tmp_path):
    monkeypatch.setenv("CIFAR10_ARTIFACTS", str(tmp_path))
    monkeypatch.setenv("CIFAR10_QUICK", "0")
    full = get_settings()
    full_model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    save_model_atomically(full_model, full.model_path)
    before = full.model_path.read_bytes()

    monkeypatch.setenv("CIFAR10_QUICK", "1")
    quick = get_settings()
    assert quick.artifacts == tmp_path / "quick"
    checkpoint = BestModelCheckpoint(quick.model_path, verbose=0)
    checkpoint.set_model(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
    checkpoint.on_epoch_end(0, {"val_loss": 0.1})
    save_history(HISTORY, quick.history_path)
    assert quick.model_path.is_file() and full.model_path.read_bytes() == before
    assert not full.history_path.exists() and not (tmp_path / "best_model.previous.keras").exists()


def test_a_history_save_that_fails_leaves_the_previous_history_and_no_temporary_file(settings, monkeypatch):
    save_history(HISTORY, settings.history_path)
    before = settings.history_path.read_text()

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("helpers.artifacts.os.replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_history({"loss": [9.0]}, settings.history_path)
    assert settings.history_path.read_text() == before
    assert _leftovers(settings.artifacts) == []


def test_without_hard_links_the_earlier_run_is_copied(settings, monkeypatch):
    """On a file system without hard links (some network shares), the earlier run's model is
    kept as a copy instead."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
    save_model_atomically(model, settings.model_path)
    earlier = settings.model_path.read_bytes()

    def no_links(src, dst):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr("helpers.artifacts.os.link", no_links)
    checkpoint = BestModelCheckpoint(settings.model_path, verbose=0)
    checkpoint.set_model(model)
    checkpoint.on_train_begin()
    checkpoint.on_epoch_end(0, {"val_loss": 0.5})
    assert checkpoint.previous_path.read_bytes() == earlier
    assert settings.model_path.stat().st_ino != checkpoint.previous_path.stat().st_ino


def test_the_checkpoint_says_when_it_saves(settings, capsys):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    checkpoint = BestModelCheckpoint(settings.model_path)             # verbose by default
    checkpoint.set_model(model)
    for epoch, val_loss in enumerate([0.9, 0.7, 0.8]):
        checkpoint.on_epoch_end(epoch, {"val_loss": val_loss})
    assert capsys.readouterr().out.splitlines() == [
        "Epoch 1: val_loss improved from inf to 0.9000; saved to best_model.keras",
        "Epoch 2: val_loss improved from 0.9000 to 0.7000; saved to best_model.keras"]


def test_a_missing_artifact_shows_only_its_message_in_a_notebook(settings):
    with pytest.raises(MissingArtifactError) as failure:
        load_history(settings)
    assert failure.value._render_traceback_() == [f"MissingArtifactError: {failure.value}"]


# --------------------------------------------------------------------------- a shared, read-only folder

def _tiny_model(value):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
    model.set_weights([np.full((4, 2), value, "float32"), np.zeros(2, "float32")])
    return model


def test_a_read_only_shared_folder_sends_the_model_to_the_students_own(tmp_path, monkeypatch, capsys):
    """A teacher's model, shared read-only: the student's training goes on, into their own folder."""
    import helpers.artifacts as artifacts
    shared, own = tmp_path / "shared" / "class", tmp_path / "own"
    save_model_atomically(_tiny_model(9.0), shared / "best_model.keras")
    before = (shared / "best_model.keras").read_bytes()
    monkeypatch.setenv("CIFAR10_OWN_ARTIFACTS", str(own))
    # as root every folder is writable, so the test makes the shared one refuse writes
    monkeypatch.setattr(artifacts, "_writable", lambda folder: not Path(folder).is_relative_to(shared))
    checkpoint = BestModelCheckpoint(shared / "best_model.keras", shared / "history.json", verbose=0)
    model = _tiny_model(1.0)
    checkpoint.set_model(model)
    checkpoint.on_train_begin()
    note = capsys.readouterr().out
    assert "is read-only" in note and str(own / "class" / "best_model.keras") in note
    assert f"CIFAR10_ARTIFACTS={own}" in note and "Nothing is lost" in note
    checkpoint.on_epoch_end(0, {"val_loss": 1.0, "loss": 1.2})
    assert keras.models.load_model(own / "class" / "best_model.keras").get_layer("d").get_weights()[0][0, 0] == 1.0
    assert json.loads((own / "class" / "history.json").read_text()) == {"val_loss": [1.0], "loss": [1.2]}
    assert (shared / "best_model.keras").read_bytes() == before and sorted(p.name for p in shared.iterdir()) == [
        "best_model.keras"]


def test_a_folder_that_refuses_a_save_mid_training_loses_nothing(tmp_path, monkeypatch, capsys):
    import errno

    import helpers.artifacts as artifacts
    shared, own = tmp_path / "shared", tmp_path / "own"
    monkeypatch.setenv("CIFAR10_OWN_ARTIFACTS", str(own))
    real_save = artifacts.save_model_atomically

    def save(model, path):
        if Path(path).is_relative_to(shared):
            raise PermissionError(errno.EROFS, "Read-only file system", str(path))
        return real_save(model, path)

    checkpoint = BestModelCheckpoint(shared / "best_model.keras", verbose=0)
    model = _tiny_model(2.0)
    checkpoint.set_model(model)
    checkpoint.on_train_begin()                              # writable when training starts...
    monkeypatch.setattr(artifacts, "save_model_atomically", save)   # ...and no longer at the first save
    checkpoint.on_epoch_end(0, {"val_loss": 0.5})
    assert "is read-only" in capsys.readouterr().out
    assert checkpoint.path == own / "best_model.keras" and checkpoint.best_epoch == 1
    assert keras.models.load_model(own / "best_model.keras").get_layer("d").get_weights()[0][0, 0] == 2.0
    # other errors are not swallowed
    monkeypatch.setattr(artifacts, "save_model_atomically",
                        lambda m, p: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(OSError, match="No space left"):
        checkpoint.on_epoch_end(1, {"val_loss": 0.4})
