"""Test-session settings, shared by the unit tests and by nbval's notebook kernels.

Tests run in quick mode and write into a temporary artifacts folder, so `make test`
never overwrites a model a reader trained (set CIFAR10_TEST_ARTIFACTS to keep the
folder for inspection). They read CIFAR-10 from CIFAR10_PATH or Keras' cache and
never download it: `make data` fetches it once.
"""
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# The browser test's deliberately failing notebook is not one for nbval to run.
collect_ignore_glob = ["tests/browser/*.ipynb"]

KERAS_CACHE = Path("~/.keras/datasets/cifar-10-batches-py-target/cifar-10-batches-py").expanduser()
_tmp = None


def pytest_configure(config):
    global _tmp
    os.environ["CIFAR10_QUICK"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    keep = os.environ.get("CIFAR10_TEST_ARTIFACTS")
    if keep:
        os.environ["CIFAR10_ARTIFACTS"] = keep
    else:
        _tmp = tempfile.mkdtemp(prefix="cifar10-test-artifacts-")
        os.environ["CIFAR10_ARTIFACTS"] = _tmp
    if not os.environ.get("CIFAR10_PATH"):
        if not KERAS_CACHE.is_dir():
            raise pytest.UsageError(
                "The tests need a local copy of CIFAR-10 and never download it. Run "
                "`make data` once (downloads into ~/.keras/datasets), or set CIFAR10_PATH "
                "to a cifar-10-batches-py folder or cifar-10-python.tar.gz.")
        os.environ["CIFAR10_PATH"] = str(KERAS_CACHE)


def pytest_unconfigure(config):
    if _tmp:
        shutil.rmtree(_tmp, ignore_errors=True)
