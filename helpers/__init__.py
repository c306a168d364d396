"""Shared code for the CIFAR-10 CNN series: only what two or more notebooks use.

    from helpers import load_cifar10, convert_data_format, build_article_model
"""
import os as _os
import sys as _sys
from contextlib import contextmanager as _contextmanager
from importlib.util import find_spec as _find_spec

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@_contextmanager
def _quiet_stderr():
    """Silence the C++ start-up notes TensorFlow writes straight to stderr on import
    ("Could not find cuda drivers...", absl's InitializeLog warning). They are printed
    before TF_CPP_MIN_LOG_LEVEL takes effect and would show in every notebook."""
    try:
        _sys.stderr.flush()
        saved = _os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr: nothing to silence
        yield
        return
    devnull = _os.open(_os.devnull, _os.O_WRONLY)
    _os.dup2(devnull, 2)
    try:
        yield
    finally:
        _os.dup2(saved, 2)
        _os.close(devnull)
        _os.close(saved)


with _quiet_stderr():
    import keras as _keras  # noqa: F401  (imports the backend once, quietly)
    # Keras also imports TensorFlow under the JAX and PyTorch backends when it is installed
    # (keras.utils.set_random_seed seeds it too), so import it here, quietly, whatever the backend.
    if _find_spec("tensorflow") is not None:
        import tensorflow as _tf  # noqa: F401

from .artifacts import (BestModelCheckpoint, MissingArtifactError, load_best_model, load_history, own_artifacts_folder,
                        save_history, save_model_atomically)
from .data import (CLASS_NAMES, NUM_CLASSES, CIFAR10DataError, ImageBatches, convert_data_format,
                   describe_source, load_cifar10)
from .exercises import check_exercise
from .model import build_article_model
from .progress import LiveProgress
from .plots import class_titles, plot_history, plot_image_grid, use_series_style
from .settings import RunSettings, get_settings, short_path, split_train_val

__all__ = [
    "BestModelCheckpoint", "CLASS_NAMES", "NUM_CLASSES", "CIFAR10DataError", "ImageBatches", "LiveProgress", "MissingArtifactError", "RunSettings",
    "build_article_model", "check_exercise", "class_titles", "convert_data_format", "describe_source",
    "get_settings", "load_best_model", "load_cifar10", "load_history", "own_artifacts_folder", "plot_history",
    "plot_image_grid", "save_history", "save_model_atomically", "short_path", "split_train_val", "use_series_style",
]
