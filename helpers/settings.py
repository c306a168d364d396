"""Run settings: the article's (full mode) or a classroom/CI quick mode, read once.

Environment variables:
  CIFAR10_QUICK=1        quick mode: a 3,000-image training subset, 2 epochs
  CIFAR10_ARTIFACTS=DIR  where models, histories and executed notebooks go
                         (default: artifacts/ in the repository; quick mode
                         writes to its own quick/ subfolder, so it never
                         overwrites a model trained in full mode)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SEED = 42
N_VALIDATION = 5_000  # the last 5,000 training images are held out for validation


@dataclass(frozen=True)
class RunSettings:
    quick: bool
    n_train: int          # images the model trains on
    n_val: int            # images held out from the training set for validation
    epochs: int
    batch_size: int
    seed: int
    artifacts: Path       # this mode's output folder

    @property
    def model_path(self) -> Path:
        return self.artifacts / "best_model.keras"

    @property
    def history_path(self) -> Path:
        return self.artifacts / "history.json"

    def describe(self) -> str:
        mode = "quick mode (CIFAR10_QUICK=1)" if self.quick else "full mode (the article's settings)"
        return (f"{mode}: training on {self.n_train:,} images, validating on {self.n_val:,}, "
                f"{self.epochs} epochs of batch {self.batch_size}; artifacts in {self.artifacts}")


def _flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name}={os.environ[name]!r} is not understood; use {name}=1 or {name}=0.")


def get_settings() -> RunSettings:
    """Read the run settings from the environment (see the module docstring)."""
    quick = _flag("CIFAR10_QUICK")
    base = Path(os.environ.get("CIFAR10_ARTIFACTS") or REPO_ROOT / "artifacts").expanduser()
    if quick:
        return RunSettings(quick=True, n_train=3_000, n_val=2_000, epochs=2,
                           batch_size=32, seed=SEED, artifacts=base / "quick")
    return RunSettings(quick=False, n_train=50_000 - N_VALIDATION, n_val=N_VALIDATION,
                       epochs=10, batch_size=32, seed=SEED, artifacts=base)


def split_train_val(x, y, settings: RunSettings):
    """Hold out the last `n_val` training images for validation; train on the first `n_train`.

    The test set is not touched: it is kept for the final check in notebook 04.
    """
    if settings.n_train + settings.n_val > len(x):
        raise ValueError(f"{settings.n_train} + {settings.n_val} images requested, "
                         f"but the training set has {len(x)}.")
    return (x[:settings.n_train], y[:settings.n_train]), (x[-settings.n_val:], y[-settings.n_val:])
