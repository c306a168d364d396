"""Live training progress in JupyterLab that leaves one line per epoch in the saved notebook."""
from __future__ import annotations

import time

import keras


def _format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _ipython_display(text):
    """A display handle in a Jupyter kernel (updated in place), or None in a plain script."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return None
    if get_ipython() is None or not hasattr(get_ipython(), "kernel"):
        return None
    handle = display({"text/plain": text}, raw=True, display_id=True)
    return _TextHandle(handle)


class _TextHandle:
    """An IPython DisplayHandle that takes plain text."""

    def __init__(self, handle):
        self.handle = handle

    def update(self, text):
        self.handle.update({"text/plain": text}, raw=True)


class LiveProgress(keras.callbacks.Callback):
    """One status line, rewritten in place while `fit` runs: epoch, step, speed, time left.

    Use it with `verbose=2`, which prints one line per finished epoch. In JupyterLab the
    status line updates at most every `every` seconds through an IPython display handle
    (`display(..., display_id=True)`, then `.update(...)`), so a saved or headless-run
    notebook stores only its last state: no thousands of progress-bar lines in the file.
    Outside a notebook it stays silent. `display` may be given for other front ends (and
    for tests): a function taking the first text and returning an object with `.update`.
    """

    def __init__(self, every: float = 1.0, display=None, clock=time.monotonic):
        super().__init__()
        self.every, self.clock = every, clock
        self._display = display or _ipython_display
        self.handle = None
        self.last_text = ""

    def _show(self, text, force=False):
        now = self.clock()
        if not force and now - self._shown_at < self.every:
            return
        self._shown_at, self.last_text = now, text
        if not self._opened:
            self.handle, self._opened = self._display(text), True
        elif self.handle is not None:
            self.handle.update(text)

    def on_train_begin(self, logs=None):
        self.epochs = self.params.get("epochs") or 1
        self.steps = self.params.get("steps")
        self.handle, self._opened, self._shown_at = None, False, -float("inf")
        self._train_started = self.clock()
        self._show(f"starting: {self.epochs} epoch(s) of {self.steps or '?'} steps", force=True)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self._epoch_started = epoch, self.clock()

    def on_train_batch_end(self, batch, logs=None):
        done = batch + 1
        elapsed = self.clock() - self._epoch_started
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"epoch {self.epoch + 1}/{self.epochs}: step {done:,}"
        if self.steps:
            text += f"/{self.steps:,}"
        if rate:
            text += f", {rate:.1f} steps/s"
            if self.steps:
                left_epoch = (self.steps - done) / rate
                left_all = left_epoch + (self.epochs - self.epoch - 1) * self.steps / rate
                text += f", about {_format_seconds(left_epoch)} left in this epoch"
                if self.epochs > self.epoch + 1:
                    text += f" ({_format_seconds(left_all)} in all)"
        self._show(text)

    def on_train_end(self, logs=None):
        total = self.clock() - self._train_started
        done = getattr(self, "epoch", -1) + 1
        self._show(f"trained {done} of {self.epochs} epoch(s) in {_format_seconds(total)}", force=True)

