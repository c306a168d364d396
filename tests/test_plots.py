import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from helpers import class_titles, plot_history, plot_image_grid, use_series_style

# Four epochs in which every rule picks a different epoch: the lowest validation loss is at
# epoch 2, the best validation accuracy at epoch 3, the lowest training loss at epoch 4; and no
# training value equals a validation value, so a curve drawn from the wrong key shows.
HISTORY = {"loss": [1.5, 1.1, 0.9, 0.7], "accuracy": [0.45, 0.6, 0.7, 0.8],
           "val_loss": [1.3, 1.2, 1.25, 1.4], "val_accuracy": [0.5, 0.55, 0.58, 0.56]}


def test_class_titles_name_each_label_whatever_its_shape():
    assert class_titles(np.array([[3], [0], [9]], np.uint8)) == ["cat", "airplane", "truck"]
    assert class_titles([1, 2, 8]) == ["automobile", "bird", "ship"]
    assert class_titles(np.array(5)) == ["dog"]


def test_image_grid_shows_each_image_with_its_own_title(real_data):
    (x, _), _ = real_data
    titles = [f"image {i}" for i in range(10)]
    colours = ["red"] * 5 + ["green"] * 5
    fig = plot_image_grid(x[:10], titles, ncols=4, suptitle="ten images", title_colors=colours)
    assert len(fig.axes) == 12                                  # 3 rows of 4; the last two empty
    shown = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in shown] == titles
    for i, ax in enumerate(shown):
        assert np.array_equal(ax.get_images()[0].get_array(), x[i])
        assert matplotlib.colors.same_color(ax.title.get_color(), colours[i])
    assert all(not ax.get_images() and not ax.axison for ax in fig.axes[10:])
    assert fig._suptitle.get_text() == "ten images"
    plt.close(fig)
    fig = plot_image_grid(x[:2], ["a", "b"], ncols=2)             # titles in black by default
    assert [ax.title.get_color() for ax in fig.axes] == ["black", "black"] and fig._suptitle is None
    plt.close(fig)


def test_image_grid_refuses_mismatched_titles():
    with pytest.raises(ValueError, match=r"3 images but 2 titles"):
        plot_image_grid(np.zeros((3, 32, 32, 3), np.uint8), ["a", "b"])


def test_history_plot_draws_training_and_validation_from_their_own_keys():
    fig = plot_history(HISTORY, title="a run")
    loss_ax, accuracy_ax = fig.axes
    for ax, key in ((loss_ax, "loss"), (accuracy_ax, "accuracy")):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert list(lines)[:2] == ["training", "validation"]
        assert lines["training"].get_ydata().tolist() == HISTORY[key]
        assert lines["validation"].get_ydata().tolist() == HISTORY[f"val_{key}"]
        assert lines["training"].get_xdata().tolist() == [1, 2, 3, 4]
        # the marker: the lowest validation loss (epoch 2), in both panels
        marker = lines["lowest validation loss (epoch 2)"]
        assert list(marker.get_xdata()) == [2, 2]
    assert loss_ax.get_ylabel() == "loss (categorical cross-entropy)" and accuracy_ax.get_ylabel() == "accuracy"
    assert fig._suptitle.get_text() == "a run"
    plt.close(fig)


def test_history_plot_needs_all_four_curves():
    with pytest.raises(KeyError, match=r"history lacks \['val_accuracy', 'val_loss'\]"):
        plot_history({"loss": [1], "accuracy": [1]})


def test_series_style_keeps_figures_white_in_a_dark_theme():
    with matplotlib.rc_context():
        plt.rcParams["figure.facecolor"] = "black"
        use_series_style()
        assert plt.rcParams["figure.facecolor"] == "white" and plt.rcParams["axes.facecolor"] == "white"
        assert not plt.rcParams["axes.spines.top"]
