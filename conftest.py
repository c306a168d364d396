"""Test-session settings, shared by the unit tests and by nbval's notebook kernels.

Tests run in quick mode and write into a temporary artifacts folder, so `make test`
never overwrites a model a reader trained (set CIFAR10_TEST_ARTIFACTS to keep the
folder for inspection). They read CIFAR-10 from CIFAR10_PATH (a folder, or the archive, unpacked
once per session into a temporary folder) or Keras' cache and never download it: `make data`
fetches it once.
"""
import os
import shutil
import tarfile
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
    if os.environ.get("CIFAR10_PATH"):
        _unpack_if_archive()
    if not os.environ.get("CIFAR10_PATH"):
        if not KERAS_CACHE.is_dir():
            raise pytest.UsageError(
                "The tests need a local copy of CIFAR-10 and never download it. Run "
                "`make data` once (downloads into ~/.keras/datasets), or set CIFAR10_PATH "
                "to a cifar-10-batches-py folder or cifar-10-python.tar.gz.")
        os.environ["CIFAR10_PATH"] = str(KERAS_CACHE)


def _unpack_if_archive():
    """CIFAR10_PATH may name the official archive (or a folder holding only it), as the docs
    suggest; some tests link to the batch files one by one, so unpack it once for this session
    (about 3 s) into a temporary folder, and point CIFAR10_PATH, for the tests and the notebook
    kernels alike, at the unpacked copy. The loader's own checks still read the archive
    elsewhere (tests/test_data.py builds archives of its own)."""
    global _unpacked
    from helpers.data import FOLDER, resolve_local_copy
    try:
        source = resolve_local_copy(os.environ["CIFAR10_PATH"])
    except Exception:                # a missing or wrong path: the tests report it themselves
        return
    if not source.is_file():
        return
    _unpacked = tempfile.mkdtemp(prefix="cifar10-test-data-")
    with tarfile.open(source) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(f"{FOLDER}/")]
        tar.extractall(_unpacked, members=members, filter="data")
    os.environ["CIFAR10_PATH"] = str(Path(_unpacked) / FOLDER)


_unpacked = None


def pytest_unconfigure(config):
    for folder in (_tmp, _unpacked):
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
