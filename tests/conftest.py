import os
from pathlib import Path

import pytest

from helpers.data import FOLDER, TEST_FILE, TRAIN_FILES, resolve_local_copy


@pytest.fixture(scope="session")
def batch_dir() -> Path:
    """The real local copy's cifar-10-batches-py folder (CIFAR10_PATH, see ../conftest.py)."""
    source = resolve_local_copy(os.environ["CIFAR10_PATH"])
    if source.is_file():
        pytest.fail(f"CIFAR10_PATH={source} is an archive; the tests need the unpacked "
                    f"'{FOLDER}' folder (unpack it, or point CIFAR10_PATH at the folder).")
    return source


@pytest.fixture(scope="session")
def real_data(batch_dir):
    from helpers import load_cifar10
    return load_cifar10(batch_dir)


@pytest.fixture
def copy_with(batch_dir, tmp_path):
    """A complete copy in tmp (links to the real files) with some files replaced.

    copy_with({"data_batch_1": b"..."}) -> folder; a value of None deletes that file.
    """
    def make(replace: dict) -> Path:
        folder = tmp_path / FOLDER
        folder.mkdir()
        for name in TRAIN_FILES + (TEST_FILE, "batches.meta"):
            if name in replace:
                if replace[name] is not None:
                    (folder / name).write_bytes(replace[name])
            else:
                (folder / name).symlink_to(batch_dir / name)
        return folder
    return make
