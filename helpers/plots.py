"""Figures that more than one notebook draws: an image grid and the training curves."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .data import CLASS_NAMES


def use_series_style():
    """Plot defaults for the series: readable sizes, and white figures that stay
    legible in JupyterLab's dark theme as well as its light one."""
    plt.rcParams.update({
        "figure.dpi": 100,
        "figure.facecolor": "white",
        "axes.facecolor": "white",
        "savefig.facecolor": "white",
        "axes.titlesize": 11,
        "axes.labelsize": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
    })


def plot_image_grid(images, titles, ncols=8, size=1.4, suptitle=None, title_colors=None):
    """Show images in a grid, one title under each (a class name, or 'true → predicted')."""
    images = np.asarray(images)
    if len(images) != len(titles):
        raise ValueError(f"{len(images)} images but {len(titles)} titles.")
    nrows = int(np.ceil(len(images) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * (size + 0.35)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(images[i], interpolation="nearest")
            color = title_colors[i] if title_colors is not None else "black"
            ax.set_title(titles[i], fontsize=8, color=color, pad=3)
    if suptitle:
        fig.suptitle(suptitle, fontsize=12)
    fig.tight_layout()
    return fig


def class_titles(labels):
    """Class names for integer labels of any shape, e.g. y_train[:16]."""
    return [CLASS_NAMES[int(i)] for i in np.asarray(labels).reshape(-1)]


def plot_history(history, title="Training history"):
    """Loss and accuracy per epoch, training next to validation.

    `history` is the dict of lists that `model.fit(...).history` holds (or the JSON
    that notebook 03 saves): keys loss, accuracy, val_loss, val_accuracy.
    """
    missing = {"loss", "accuracy", "val_loss", "val_accuracy"} - set(history)
    if missing:
        raise KeyError(f"history lacks {sorted(missing)}; pass model.fit(...).history.")
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, key, label in ((axes[0], "loss", "loss (categorical cross-entropy)"),
                           (axes[1], "accuracy", "accuracy")):
        ax.plot(epochs, history[key], "o-", label="training")
        ax.plot(epochs, history[f"val_{key}"], "s--", label="validation")
        best = int(np.argmin(history["val_loss"]))
        ax.axvline(epochs[best], color="grey", lw=0.8, ls=":",
                   label=f"lowest validation loss (epoch {epochs[best]})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_xticks(epochs)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig
