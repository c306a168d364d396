import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from helpers import class_titles, plot_history, plot_image_grid  # noqa: E402

HISTORY = {"loss": [1.5, 1.1, 0.9], "accuracy": [0.45, 0.6, 0.7],
           "val_loss": [1.3, 1.2, 1.25], "val_accuracy": [0.5, 0.58, 0.57]}


def test_image_grid_titles_each_image_with_its_class(real_data):
    (x, y), _ = real_data
    fig = plot_image_grid(x[:10], class_titles(y[:10]), ncols=5)
    titled = [ax.get_title() for ax in fig.axes if ax.get_images()]
    assert titled == class_titles(y[:10]) and len(fig.axes) == 10
    plt.close(fig)


def test_image_grid_refuses_mismatched_titles():
    with pytest.raises(ValueError, match=r"3 images but 2 titles"):
        plot_image_grid(np.zeros((3, 32, 32, 3), np.uint8), ["a", "b"])


def test_history_plot_marks_the_best_epoch():
    fig = plot_history(HISTORY)
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()][:2] == ["training", "validation"]
    assert ax.get_lines()[2].get_xdata()[0] == 2   # lowest val_loss at epoch 2
    plt.close(fig)
    with pytest.raises(KeyError, match=r"val_loss"):
        plot_history({"loss": [1], "accuracy": [1]})
