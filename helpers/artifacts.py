"""What notebook 03 leaves for notebook 04: the best model and the training history."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .settings import RunSettings


class MissingArtifactError(FileNotFoundError):
    """Something an earlier notebook writes is not there yet."""

    def _render_traceback_(self):  # IPython shows only the message, no traceback
        return [f"{type(self).__name__}: {self}"]


def save_history(history: dict, path: Path) -> Path:
    """Write `model.fit(...).history` as JSON, atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: [float(v) for v in values] for k, values in history.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".history-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(clean, f, indent=1)
    os.replace(tmp, path)
    return path


def _require(path: Path, what: str, settings: RunSettings):
    if not path.is_file():
        mode = "CIFAR10_QUICK=1 " if settings.quick else ""
        raise MissingArtifactError(
            f"{path} not found: {what} is written by notebook 03. Run "
            f"03_model_building_and_training.ipynb first ({mode}make run does all four "
            f"notebooks in order), with the same CIFAR10_QUICK and CIFAR10_ARTIFACTS "
            f"settings as this notebook.")


def load_history(settings: RunSettings) -> dict:
    """The training history notebook 03 saved, as a dict of per-epoch lists."""
    _require(settings.history_path, "the training history", settings)
    return json.loads(settings.history_path.read_text())


def load_best_model(settings: RunSettings, input_shape=(32, 32, 3), num_classes=10):
    """The best checkpoint notebook 03 saved (lowest validation loss).

    Refuses, with a clear message, a model that does not take CIFAR-10 images or
    does not output one probability per class.
    """
    import keras

    _require(settings.model_path, "the best model", settings)
    model = keras.models.load_model(settings.model_path)
    expected_in, expected_out = (None, *input_shape), (None, num_classes)
    if tuple(model.input_shape) != expected_in or tuple(model.output_shape) != expected_out:
        raise ValueError(
            f"{settings.model_path} takes inputs {model.input_shape} and gives outputs "
            f"{model.output_shape}, but CIFAR-10 needs {expected_in} -> {expected_out}. It is not "
            "a model of this series: re-run notebook 03 to write a new one.")
    return model
