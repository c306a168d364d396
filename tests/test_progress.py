"""Live progress while training: in place in JupyterLab, one line per epoch in the saved file."""
import sys

import keras
import nbformat
from nbclient import NotebookClient

from helpers import LiveProgress, convert_data_format


class FakeHandle:
    def __init__(self, shown, text):
        self.shown = shown
        shown.append(text)

    def update(self, text):
        self.shown.append(text)


def _tiny_fit(real_data, callback, epochs=2):
    (x_raw, y_raw), _ = real_data
    x, y = convert_data_format(x_raw[:256], y_raw[:256])
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0, callbacks=[callback])


def test_one_line_updated_in_place_with_step_speed_and_time_left(real_data):
    shown, handles = [], []

    def display(text):
        handles.append(FakeHandle(shown, text))
        return handles[-1]

    _tiny_fit(real_data, LiveProgress(every=0, display=display))
    assert len(handles) == 1                                   # one line, updated in place
    assert shown[0] == "starting: 2 epoch(s) of 4 steps"
    steps = [t for t in shown if t.startswith("epoch")]
    assert len(steps) == 8                                     # every step of both epochs
    assert steps[0].startswith("epoch 1/2: step 1/4, ") and "steps/s" in steps[0]
    assert "left in this epoch" in steps[0] and "in all)" in steps[0]
    assert steps[-1].startswith("epoch 2/2: step 4/4, ") and "in all" not in steps[-1]
    assert shown[-1].startswith("trained 2 of 2 epoch(s) in ")


def test_updates_are_throttled():
    shown = []
    now = [0.0]
    progress = LiveProgress(every=1.0, display=lambda text: FakeHandle(shown, text), clock=lambda: now[0])
    progress.set_params({"epochs": 1, "steps": 1000})
    progress.on_train_begin()
    progress.on_epoch_begin(0)
    for step in range(1000):
        now[0] = step * 0.01                                   # 100 steps per second, 10 s in all
        progress.on_train_batch_end(step)
    progress.on_train_end()
    assert 9 <= len(shown) - 2 <= 11                           # about one update per second
    assert "epoch 1/1: step 901/1,000, 100.1 steps/s, about 1 s left in this epoch" in shown


def test_a_headless_run_stores_one_progress_line_and_one_line_per_epoch(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import helpers, keras, numpy as np\n"
        "x = np.random.default_rng(0).random((2048, 8), dtype=np.float32)\n"
        "y = keras.utils.to_categorical(np.arange(2048) % 10, 10)\n"
        "model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(10, activation='softmax')])\n"
        "model.compile(optimizer='sgd', loss='categorical_crossentropy')\n"
        "_ = model.fit(x, y, batch_size=8, epochs=3, verbose=2,\n"
        "              callbacks=[helpers.LiveProgress(every=0)])")]
    NotebookClient(nb, timeout=300, kernel_name="cifar10-cnn",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    displays = [o for o in outputs if o.output_type == "display_data"]
    assert len(displays) == 1, outputs                        # 768 updates, one stored output
    assert displays[0].data["text/plain"].startswith("trained 3 of 3 epoch(s) in ")
    text = "".join(o.text for o in outputs if o.output_type == "stream")
    assert text.count("256/256") == 3 and len(text.splitlines()) <= 9, text


def test_times_read_in_seconds_minutes_or_hours():
    from helpers.progress import _format_seconds
    assert [_format_seconds(s) for s in (-2, 0.4, 59.4, 61, 3_599, 3_600, 7_325)] == [
        "0 s", "0 s", "59 s", "1 min 01 s", "59 min 59 s", "1 h 00 min", "2 h 02 min"]


def test_outside_a_notebook_nothing_is_displayed(monkeypatch):
    """In a plain script there is no display handle: progress stays silent and does not fail,
    with IPython installed (no kernel running) or without it."""
    from helpers.progress import _ipython_display
    assert _ipython_display("text") is None
    monkeypatch.setitem(sys.modules, "IPython", None)                # IPython not installed
    assert _ipython_display("text") is None
    progress = LiveProgress(every=0)
    progress.set_params({"epochs": 1, "steps": 2})
    progress.on_train_begin()
    progress.on_epoch_begin(0)
    progress.on_train_batch_end(0)
    progress.on_train_end()
    assert progress.handle is None and progress.last_text.startswith("trained 1 of 1 epoch(s)")


def test_a_display_handle_is_updated_with_plain_text():
    from helpers.progress import _TextHandle
    calls = []

    class Handle:
        def update(self, data, raw):
            calls.append((data, raw))

    _TextHandle(Handle()).update("epoch 1/1: step 5")
    assert calls == [({"text/plain": "epoch 1/1: step 5"}, True)]


def test_unknown_step_count_and_no_elapsed_time():
    """Without a step count (a generator), no total and no time left; before any time passed, no
    speed either."""
    shown, now = [], [5.0]
    progress = LiveProgress(every=0, display=lambda text: FakeHandle(shown, text), clock=lambda: now[0])
    progress.set_params({"epochs": 2, "steps": None})
    progress.on_train_begin()
    progress.on_epoch_begin(0)
    progress.on_train_batch_end(0)
    now[0] = 6.0
    progress.on_train_batch_end(1)
    assert shown == ["starting: 2 epoch(s) of ? steps", "epoch 1/2: step 1", "epoch 1/2: step 2, 2.0 steps/s"]


def test_in_a_kernel_progress_opens_one_display_and_updates_it(monkeypatch):
    import IPython
    import IPython.display
    from helpers.progress import _ipython_display, _TextHandle
    opened = []

    class Handle:
        def update(self, data, raw):
            opened.append(("update", data))

    def display(data, raw, display_id):
        opened.append(("display", data, raw, display_id))
        return Handle()

    monkeypatch.setattr(IPython, "get_ipython", lambda: type("Shell", (), {"kernel": object()})())
    monkeypatch.setattr(IPython.display, "display", display)
    handle = _ipython_display("starting")
    assert isinstance(handle, _TextHandle)
    handle.update("step 1")
    assert opened == [("display", {"text/plain": "starting"}, True, True), ("update", {"text/plain": "step 1"})]
