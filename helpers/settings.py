"""Run settings: the article's (full mode), a class mode for a live lesson, or a CI quick mode.

Environment variables:
  CIFAR10_QUICK=1        quick mode: a 3,000-image training subset, 2 epochs (CI, smoke tests)
  CIFAR10_CLASS=1        class mode: the article's model and settings, but one epoch on
                         40,000 images, so that notebook 03 fits a lesson (about 5 minutes
                         on a 2-core CPU)
  CIFAR10_ARTIFACTS=DIR  where models, histories and executed notebooks go
                         (default: artifacts/ in the repository; quick and class
                         mode write to their own quick/ and class/ subfolders,
                         so they never overwrite a model trained in full mode)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SEED = 42
N_VALIDATION = 5_000  # the last 5,000 training images are held out for validation
CLASS_N_TRAIN = 40_000  # class mode: one epoch on these, 1.5-5 minutes on 2 CPU cores (hosts differ)


@dataclass(frozen=True)
class RunSettings:
    mode: str             # "full", "class" or "quick"
    n_train: int          # images the model trains on
    n_val: int            # images held out from the training set for validation
    epochs: int
    batch_size: int
    seed: int
    artifacts: Path       # this mode's output folder

    @property
    def quick(self) -> bool:
        """True in quick mode (CI and smoke runs)."""
        return self.mode == "quick"

    @property
    def model_path(self) -> Path:
        return self.artifacts / "best_model.keras"

    @property
    def history_path(self) -> Path:
        return self.artifacts / "history.json"

    def describe(self) -> str:
        mode = {"quick": "quick mode (CIFAR10_QUICK=1)", "class": "class mode (CIFAR10_CLASS=1)",
                "full": "full mode (the article's settings)"}[self.mode]
        epochs = "1 epoch" if self.epochs == 1 else f"{self.epochs} epochs"
        return (f"{mode}: training on {self.n_train:,} images, validating on {self.n_val:,}, "
                f"{epochs} of batch {self.batch_size}; artifacts in {short_path(self.artifacts)}")


def short_path(path) -> str:
    """A path as a reader can print it without showing this machine's folders: relative to
    the repository when inside it, from ~ when in the home folder, else `.../<last two parts>`."""
    path = Path(path).expanduser().resolve()
    for base, prefix in ((REPO_ROOT, ""), (Path.home().resolve(), "~/")):
        try:
            rel = path.relative_to(base)
        except ValueError:
            continue
        text = rel.as_posix()
        return (prefix + text) if text != "." else (prefix.rstrip("/") or ".")
    return ".../" + "/".join(path.parts[-2:])


def _flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name}={os.environ[name]!r} is not understood; use {name}=1 or {name}=0.")


def get_settings() -> RunSettings:
    """Read the run settings from the environment (see the module docstring)."""
    quick, lesson = _flag("CIFAR10_QUICK"), _flag("CIFAR10_CLASS")
    if quick and lesson:
        raise ValueError("CIFAR10_QUICK=1 and CIFAR10_CLASS=1 are both set; choose one mode "
                         "(unset the other, or set it to 0).")
    base = Path(os.environ.get("CIFAR10_ARTIFACTS") or REPO_ROOT / "artifacts").expanduser()
    if quick:
        return RunSettings(mode="quick", n_train=3_000, n_val=2_000, epochs=2,
                           batch_size=32, seed=SEED, artifacts=base / "quick")
    if lesson:
        return RunSettings(mode="class", n_train=CLASS_N_TRAIN, n_val=N_VALIDATION,
                           epochs=1, batch_size=32, seed=SEED, artifacts=base / "class")
    return RunSettings(mode="full", n_train=50_000 - N_VALIDATION, n_val=N_VALIDATION,
                       epochs=10, batch_size=32, seed=SEED, artifacts=base)


def split_train_val(x, y, settings: RunSettings):
    """Hold out the last `n_val` training images for validation; train on the first `n_train`.

    The test set is not touched: it is kept for the final check in notebook 04.
    """
    if settings.n_train + settings.n_val > len(x):
        raise ValueError(f"{settings.n_train} + {settings.n_val} images requested, "
                         f"but the training set has {len(x)}.")
    return (x[:settings.n_train], y[:settings.n_train]), (x[-settings.n_val:], y[-settings.n_val:])
