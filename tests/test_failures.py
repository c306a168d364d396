"""Without data, the commands say what failed and how to fix it: one message, no traceback.
With data, the series starts without writing anything to stderr."""
import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(args, **env):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **env})


def test_make_data_without_a_copy_prints_one_clear_message(tmp_path):
    proc = _run(["scripts/check_data.py"], CIFAR10_PATH=str(tmp_path / "nowhere"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    message = proc.stderr.strip()
    assert message.startswith("CIFAR-10 is not available: ") and len(message.splitlines()) == 1
    assert "no such file or folder" in message and "CIFAR10_PATH" in message


def test_make_data_with_a_copy_says_where_it_read_it(batch_dir, tmp_path):
    """With the copy in the home folder, the message names it from ~, never by the machine's path."""
    home = tmp_path / "home"
    copy = home / "data" / "cifar-10-batches-py"
    copy.mkdir(parents=True)
    for batch in batch_dir.iterdir():
        (copy / batch.name).symlink_to(batch)
    proc = _run(["scripts/check_data.py"], HOME=str(home), CIFAR10_PATH=str(copy))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("CIFAR-10 ready (local copy: ~/data/cifar-10-batches-py)"), proc.stdout
    assert "50,000 training" in proc.stdout
    assert str(home) not in proc.stdout and str(tmp_path) not in proc.stdout


def test_a_notebook_that_finds_no_data_stops_with_the_message_not_a_traceback(tmp_path):
    proc = _run(["scripts/run_notebooks.py", "notebooks/01_data_loading.ipynb"],
                CIFAR10_PATH=str(tmp_path / "nowhere"), CIFAR10_ARTIFACTS=str(tmp_path))
    assert proc.returncode == 1
    assert "FAILED in 01_data_loading.ipynb: CIFAR10DataError: " in proc.stderr
    assert "no such file or folder" in proc.stderr
    assert "Traceback" not in proc.stderr and "----> " not in proc.stderr, proc.stderr[-2000:]


BACKENDS = [b for b in ("tensorflow", "jax", "torch") if find_spec(b) is not None]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_series_starts_quietly_on_every_installed_backend(backend):
    """A notebook's first cells (import helpers, seed, build a model) print nothing to stderr,
    under any Keras backend installed here: TensorFlow's start-up notes would show in the
    notebook, and Keras imports TensorFlow under the other backends too when it is installed."""
    code = ("import helpers, keras\n"
            "keras.utils.set_random_seed(0)\n"
            "helpers.build_article_model(seed=0)\n"
            "print(keras.backend.backend())\n")
    proc = _run(["-c", code], KERAS_BACKEND=backend)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == backend
    assert proc.stderr == "", proc.stderr


def test_the_quiet_import_works_without_a_real_stderr(monkeypatch):
    """Under pythonw, or a host that closed it, sys.stderr is None: nothing to silence, no error."""
    import helpers
    monkeypatch.setattr(sys, "stderr", None)
    with helpers._quiet_stderr():
        pass
