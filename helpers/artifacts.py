"""What notebook 03 leaves for notebook 04: the best model and the training history."""
from __future__ import annotations

import errno
import json
import math
import os
import shutil
import uuid
from pathlib import Path

import keras

from .settings import RunSettings, short_path


class MissingArtifactError(FileNotFoundError):
    """Something an earlier notebook writes is not there yet."""

    def _render_traceback_(self):  # IPython shows only the message, no traceback
        return [f"{type(self).__name__}: {self}"]


def save_history(history: dict, path: Path) -> Path:
    """Write `model.fit(...).history` as JSON, atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: [float(v) for v in values] for k, values in history.items()}
    tmp = _temporary_name(path)
    try:
        with open(tmp, "w") as f:
            json.dump(clean, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _temporary_name(path: Path) -> Path:
    """A unique hidden file name next to `path`, with the same suffix (Keras needs `.keras`)."""
    return path.with_name(f".{path.stem}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def save_model_atomically(model, path) -> Path:
    """Save `model` to `path` (a `.keras` file) so that `path` is never half-written.

    The model goes to a temporary file in the same folder, is flushed to disk, and then
    replaces `path` in one rename (`os.replace`, atomic on one file system). If anything
    fails or is interrupted before the rename, `path` still holds the previous model and
    the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    try:
        model.save(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())        # on disk before it replaces the old file
        os.replace(tmp, path)
    except BaseException:               # also Ctrl-C, or the notebook's Interrupt button
        tmp.unlink(missing_ok=True)
        raise
    return path


class BestModelCheckpoint(keras.callbacks.Callback):
    """Keep the model of the epoch with the lowest validation loss (or the lowest value of
    `monitor`: notebook 05's final model, which has no validation images, follows "loss"),
    never half-written.

    Does what `keras.callbacks.ModelCheckpoint(path, monitor="val_loss",
    save_best_only=True)` does, with three differences that protect a model that took an
    hour to train:

    - each save goes through `save_model_atomically`: an interrupted save leaves the
      previous checkpoint intact (`ModelCheckpoint` writes the file in place);
    - before its first save, a checkpoint left by an earlier run is kept as
      `<name>.previous.keras` (and its history as `<history>.previous.json`), so
      re-running the notebook does not silently replace it;
    - with `history_path`, the per-epoch losses and accuracies of this `fit` so far are
      written after every epoch, so an interrupted run leaves a history that matches its
      checkpoint;
    - a folder it cannot write to (a teacher's model, shared read-only) does not stop the
      training: the model and history go to the student's own folder
      (`own_artifacts_folder()`), with a note that says where and how notebook 04 finds them.
    """

    def __init__(self, path, history_path=None, monitor="val_loss", verbose=1):
        super().__init__()
        self.path = Path(path)
        self.previous_path = self.path.with_suffix(".previous.keras")
        self.history_path = None if history_path is None else Path(history_path)
        self.monitor = monitor
        self.verbose = verbose
        self.best = math.inf
        self.best_epoch = None
        self.history = {}
        self._kept_earlier_run = False

    def on_train_begin(self, logs=None):
        self.history = {}                                    # like keras' History: this fit only
        if not _writable(self.path.parent):                  # before an hour of training, not after
            self._move_to_own_folder()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise KeyError(
                f"BestModelCheckpoint monitors {self.monitor!r}, but fit() reported only "
                f"{sorted(logs)}. Pass validation_data=(x_val, y_val) to fit().")
        if not self._kept_earlier_run:                       # this run's first epoch
            self._in_a_writable_folder(self._keep_earlier_run)
            self._kept_earlier_run = True
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        value = float(logs[self.monitor])
        if value < self.best:
            self._in_a_writable_folder(lambda: save_model_atomically(self.model, self.path))
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.4f} to "
                      f"{value:.4f}; saved to {self.path.name}")
            self.best, self.best_epoch = value, epoch + 1
        if self.history_path is not None:
            self._in_a_writable_folder(lambda: save_history(self.history, self.history_path))

    def _in_a_writable_folder(self, write):
        try:
            write()
        except OSError as err:                               # the folder became read-only meanwhile
            if err.errno not in _NOT_YOURS:
                raise
            self._move_to_own_folder()
            write()

    def _move_to_own_folder(self):
        """The artifacts folder cannot be written (a teacher's shared, read-only model, say):
        save into the student's own folder instead, and say so once, with what to do next."""
        shared = self.path.parent
        mode = shared.name if shared.name in ("class", "quick") else None
        base = own_artifacts_folder()
        own = base / mode if mode else base
        if own.resolve() == shared.resolve():
            raise PermissionError(errno.EACCES, f"cannot write to {shared}, and it is already "
                                  "CIFAR10_OWN_ARTIFACTS: give it a folder you can write to")
        self.path = own / self.path.name
        self.previous_path = self.path.with_suffix(".previous.keras")
        if self.history_path is not None:
            self.history_path = own / self.history_path.name
        print(f"Note: {_readable(shared)} is read-only (a folder shared with you, not yours to write), "
              f"so this training saves its model to your own folder instead: {_readable(self.path)}. "
              f"Nothing is lost. Notebook 04 reads the shared model unless you start JupyterLab with "
              f"CIFAR10_ARTIFACTS={_readable(base)}; then it reads yours.")

    def _keep_earlier_run(self):
        pairs = [(self.path, self.previous_path)]
        if self.history_path is not None:
            pairs.append((self.history_path, self.history_path.with_suffix(".previous.json")))
        for current, previous in pairs:
            if current.exists():
                previous.unlink(missing_ok=True)
                try:
                    os.link(current, previous)                 # no copy, and no moment without a file
                except OSError:
                    shutil.copy2(current, previous)


_NOT_YOURS = (errno.EACCES, errno.EPERM, errno.EROFS)


def own_artifacts_folder() -> Path:
    """Where a student's models go when the artifacts folder is shared read-only:
    CIFAR10_OWN_ARTIFACTS if set, else ~/cifar10-artifacts."""
    return Path(os.environ.get("CIFAR10_OWN_ARTIFACTS") or Path.home() / "cifar10-artifacts").expanduser()


def _readable(path: Path) -> str:
    """A path as a student would type it: ~/... under the home folder, else in full."""
    path, home = Path(path), Path.home()
    return f"~/{path.relative_to(home)}" if path.is_relative_to(home) and path != home else str(path)


def _writable(folder: Path) -> bool:
    """Whether a file can be created in `folder` (or in the nearest folder above it that exists):
    tried for real, since permissions alone do not show a read-only file system."""
    folder = Path(folder)
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    probe = folder / f".write-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.touch()
    except OSError as err:
        if err.errno in _NOT_YOURS:
            return False
        raise
    probe.unlink()
    return True


def _require(path: Path, what: str, settings: RunSettings):
    if not path.is_file():
        mode = {"quick": "CIFAR10_QUICK=1 ", "class": "CIFAR10_CLASS=1 "}.get(settings.mode, "")
        raise MissingArtifactError(
            f"{short_path(path)} not found: {what} is written by notebook 03. Run "
            f"03_model_building_and_training.ipynb first ({mode}make run does all four "
            f"notebooks in order), in the same mode (CIFAR10_QUICK, CIFAR10_CLASS) and with the "
            f"same CIFAR10_ARTIFACTS as this notebook.")


def load_history(settings: RunSettings) -> dict:
    """The training history notebook 03 saved, as a dict of per-epoch lists."""
    _require(settings.history_path, "the training history", settings)
    return json.loads(settings.history_path.read_text())


def load_best_model(settings: RunSettings, input_shape=(32, 32, 3), num_classes=10, compile=True):
    """The best checkpoint notebook 03 saved (lowest validation loss).

    Refuses, with a clear message, a model that does not take CIFAR-10 images or
    does not output one probability per class. `compile=False` loads the weights only, not the
    optimiser's state (for the article's model, 131 MB less memory): enough to predict, not to
    `evaluate` or train on.
    """
    _require(settings.model_path, "the best model", settings)
    try:
        model = keras.models.load_model(settings.model_path, compile=compile)
    except Exception as err:
        raise ValueError(
            f"{settings.model_path} could not be read as a Keras model ({type(err).__name__}: "
            f"{str(err)[:200]}). It is damaged or not a model of this series: re-run notebook "
            f"03, or restore the earlier run's {settings.model_path.stem}.previous.keras if "
            "there is one.") from err
    expected_in, expected_out = (None, *input_shape), (None, num_classes)
    if tuple(model.input_shape) != expected_in or tuple(model.output_shape) != expected_out:
        raise ValueError(
            f"{settings.model_path} takes inputs {model.input_shape} and gives outputs "
            f"{model.output_shape}, but CIFAR-10 needs {expected_in} -> {expected_out}. It is not "
            "a model of this series: re-run notebook 03 to write a new one.")
    return model
