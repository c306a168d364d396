"""Run a notebook headless and read values out of its kernel, for tests that recompute what a
notebook computed; and a model whose predictions those tests know in closed form."""
import pickle
from pathlib import Path

import nbformat
import numpy as np
from nbclient import NotebookClient

TEMPERATURE = 0.2          # about half the test images get no class at or above 0.5


def text_of(outputs) -> str:
    parts = []
    for out in outputs:
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif out.get("output_type") in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


class ExecutedNotebook:
    """A notebook executed in a fresh kernel, with values read out of that kernel."""

    def __init__(self, nb, values):
        self.nb, self.values = nb, values

    def __getitem__(self, name):
        return self.values[name]

    def output(self, snippet: str) -> str:
        """The text output of the one code cell whose source contains `snippet`."""
        cells = [c for c in self.nb.cells if c.cell_type == "code" and snippet in c.source]
        assert len(cells) == 1, f"{len(cells)} code cells contain {snippet!r}"
        return text_of(cells[0].outputs)


def execute_notebook(path: Path, read: dict, dump_dir: Path) -> ExecutedNotebook:
    """Run the notebook at `path` with nbclient, in a kernel of this environment (quick mode, the
    session's artifacts folder unless the caller changed CIFAR10_ARTIFACTS), then evaluate each
    expression of `read` ({name: expression}) in that kernel and return the values, so that a
    test can recompute what the notebook computed. Raises CellExecutionError if a cell fails."""
    nb = nbformat.read(path, as_version=4)
    dump = Path(dump_dir) / f"{path.stem}.values.pickle"
    nb.cells.append(nbformat.v4.new_code_cell(
        "import pickle as _pickle\n"
        f"with open({str(dump)!r}, 'wb') as _file:\n"
        f"    _pickle.dump({{_k: eval(_e, globals()) for _k, _e in {dict(read)!r}.items()}}, _file)"))
    NotebookClient(nb, timeout=900, kernel_name="cifar10-cnn",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nb.cells.pop()
    with open(dump, "rb") as f:
        values = pickle.load(f)
    return ExecutedNotebook(nb, values)


def nearest_mean_weights(x_train, y_train):
    """Dense weights and bias whose argmax is the nearest class mean of the first 5,000 training
    images (x.mu_k - |mu_k|^2 / 2), scaled by TEMPERATURE. About 28% of the test images are
    classified right, about half get no class at or above 0.5, and the confusions are lopsided
    (a confusion matrix and its transpose differ)."""
    x = x_train[:5_000].reshape(5_000, -1).astype(np.float64) / 255
    y = np.asarray(y_train[:5_000]).ravel()
    means = np.stack([x[y == k].mean(axis=0) for k in range(10)])
    return TEMPERATURE * means.T, -TEMPERATURE * 0.5 * (means ** 2).sum(axis=1)


def nearest_mean_probabilities(x_uint8, weights, bias):
    """That model's softmax output, computed in float64 with NumPy alone."""
    logits = x_uint8.reshape(len(x_uint8), -1).astype(np.float64) / 255 @ weights + bias
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def save_nearest_mean_model(real_data, settings, history):
    """Save that model (Flatten -> Dense(10, softmax), compiled) and `history` where notebook 03
    leaves its own, for notebook 04 and its solutions to load. Returns (weights, bias)."""
    import keras

    from helpers import save_history, save_model_atomically

    (x_train, y_train), _ = real_data
    weights, bias = nearest_mean_weights(x_train, y_train)
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.set_weights([weights.astype("float32"), bias.astype("float32")])
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"])
    save_model_atomically(model, settings.model_path)
    save_history(history, settings.history_path)
    return weights, bias


def per_class_counts(y_true, y_pred):
    """Confusion matrix counted with NumPy (row = true class, column = predicted class) and,
    per class, precision, recall, specificity and F1 (0 where undefined), and support."""
    m = np.zeros((10, 10), int)
    np.add.at(m, (np.asarray(y_true), np.asarray(y_pred)), 1)
    tp = np.diag(m).astype(float)
    predicted, actual, total = m.sum(axis=0), m.sum(axis=1), m.sum()
    fp, fn = predicted - tp, actual - tp
    tn = total - tp - fp - fn
    precision = np.divide(tp, predicted, out=np.zeros(10), where=predicted > 0)
    recall = tp / actual
    specificity = tn / (tn + fp)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(10),
                   where=precision + recall > 0)
    return m, precision, recall, specificity, f1, actual
