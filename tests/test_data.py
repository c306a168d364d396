"""The loader: every source it accepts gives the same real arrays; every bad copy a clear error."""
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from helpers import CLASS_NAMES, CIFAR10DataError, describe_source, load_cifar10
from helpers.data import ARCHIVE, FOLDER, TEST_FILE, TRAIN_FILES


def _pickled(obj) -> bytes:
    return pickle.dumps(obj, protocol=3)


def _batch(n=10_000, data=None, labels=None, **extra) -> bytes:
    data = np.zeros((n, 3072), np.uint8) if data is None else data
    labels = [i % 10 for i in range(len(data))] if labels is None else labels
    return _pickled({b"batch_label": b"x", b"labels": labels, b"data": data, **extra})


# ---------------------------------------------------------------- good sources
def test_folder_gives_keras_shapes_dtypes_and_counts(real_data):
    (x_train, y_train), (x_test, y_test) = real_data
    assert x_train.shape == (50_000, 32, 32, 3) and x_train.dtype == np.uint8
    assert y_train.shape == (50_000, 1) and y_train.dtype == np.uint8
    assert x_test.shape == (10_000, 32, 32, 3) and x_test.dtype == np.uint8
    assert y_test.shape == (10_000, 1) and y_test.dtype == np.uint8
    assert np.bincount(y_train.ravel()).tolist() == [5_000] * 10
    assert np.bincount(y_test.ravel()).tolist() == [1_000] * 10
    assert len(CLASS_NAMES) == 10 and CLASS_NAMES[3] == "cat"


def test_channel_order_matches_the_official_layout(batch_dir, real_data):
    """Row i of a batch holds 1024 red, then 1024 green, then 1024 blue values."""
    with open(batch_dir / TRAIN_FILES[0], "rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"][0]
    image = real_data[0][0][0]
    assert np.array_equal(image[..., 0].ravel(), raw[:1024])     # red
    assert np.array_equal(image[..., 2].ravel(), raw[2048:])     # blue
    assert image[0, 1, 0] == raw[1]                              # row-major: (row 0, col 1)


def test_every_batch_lands_in_its_own_rows_in_file_order(batch_dir, real_data):
    """Batch k of the training files becomes rows 10,000 k to 10,000 (k + 1); the test batch, the test set."""
    (x_train, y_train), (x_test, y_test) = real_data
    for k, name in enumerate(TRAIN_FILES + (TEST_FILE,)):
        with open(batch_dir / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        images = batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        x, y = (x_test, y_test) if name == TEST_FILE else (x_train[10_000 * k:10_000 * (k + 1)],
                                                          y_train[10_000 * k:10_000 * (k + 1)])
        assert np.array_equal(x, images), name
        assert np.array_equal(y.ravel(), batch[b"labels"]), name


@pytest.fixture(scope="module")
def archive_folder(batch_dir, tmp_path_factory):
    """A folder that holds nothing but an archive laid out as the official one."""
    folder = tmp_path_factory.mktemp("shared")
    with tarfile.open(folder / ARCHIVE, "w:gz", compresslevel=1) as tar:
        for name in TRAIN_FILES + (TEST_FILE,):
            tar.add(batch_dir / name, arcname=f"{FOLDER}/{name}")
    return folder


def test_parent_folder_archive_and_env_var_give_the_same_arrays(batch_dir, real_data, archive_folder,
                                                                  monkeypatch):
    archive = archive_folder / ARCHIVE
    (x, y), (xt, yt) = real_data
    for source in (batch_dir.parent, archive):
        (x2, y2), (xt2, yt2) = load_cifar10(source)
        assert np.array_equal(x, x2) and np.array_equal(y, y2)
        assert np.array_equal(xt, xt2) and np.array_equal(yt, yt2)
    monkeypatch.setenv("CIFAR10_PATH", str(archive))
    (_, y3), _ = load_cifar10()
    assert np.array_equal(y, y3)


def test_a_folder_that_holds_only_the_archive(archive_folder, real_data, monkeypatch):
    """The README's `export CIFAR10_PATH=/shared`, where /shared holds only cifar-10-python.tar.gz."""
    assert [p.name for p in archive_folder.iterdir()] == [ARCHIVE]
    monkeypatch.setenv("CIFAR10_PATH", str(archive_folder))
    source = describe_source()
    assert source.startswith("local copy: ") and source.endswith(f"{archive_folder.name}/{ARCHIVE}")
    (x, y), (xt, yt) = real_data
    (x2, y2), (xt2, yt2) = load_cifar10(archive_folder)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert np.array_equal(xt, xt2) and np.array_equal(yt, yt2)


def test_describe_source_names_the_copy_or_keras(batch_dir, monkeypatch):
    assert describe_source(batch_dir.parent).endswith(f"/{FOLDER}")       # the folder inside it
    monkeypatch.delenv("CIFAR10_PATH", raising=False)
    assert describe_source() == "keras.datasets.cifar10 (downloaded once, then cached in ~/.keras/datasets)"


def test_without_a_local_copy_it_asks_keras(monkeypatch):
    import keras
    sentinel = ((np.zeros(1),) * 2,) * 2
    monkeypatch.delenv("CIFAR10_PATH", raising=False)
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", lambda: sentinel)
    assert load_cifar10() is sentinel


def test_failed_download_says_how_to_work_offline(monkeypatch):
    import keras

    def offline():
        raise Exception("URL fetch failure on https://www.cs.toronto.edu/...: None -- "
                        "[Errno -3] Temporary failure in name resolution")
    monkeypatch.delenv("CIFAR10_PATH", raising=False)
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(CIFAR10DataError, match=r"Downloading CIFAR-10.*failed.*set CIFAR10_PATH"):
        load_cifar10()


# ---------------------------------------------------------------- bad local copies
def test_missing_path(tmp_path):
    with pytest.raises(CIFAR10DataError, match=r"nowhere: no such file or folder.*CIFAR10_PATH"):
        load_cifar10(tmp_path / "nowhere")


def test_folder_without_any_copy(tmp_path):
    with pytest.raises(CIFAR10DataError, match=r"holds no CIFAR-10 copy"):
        load_cifar10(tmp_path)


def test_missing_batch_file(copy_with):
    folder = copy_with({"data_batch_3": None})
    with pytest.raises(CIFAR10DataError, match=r"data_batch_3: batch file missing"):
        load_cifar10(folder)


def test_truncated_file(copy_with, batch_dir):
    half = (batch_dir / "data_batch_1").read_bytes()[:1_000_000]
    with pytest.raises(CIFAR10DataError, match=r"data_batch_1: could not be read.*truncated"):
        load_cifar10(copy_with({"data_batch_1": half}))


def test_empty_file(copy_with):
    with pytest.raises(CIFAR10DataError, match=r"test_batch: the file is empty"):
        load_cifar10(copy_with({"test_batch": b""}))


def test_not_a_pickle(copy_with):
    with pytest.raises(CIFAR10DataError, match=r"data_batch_1: could not be read.*not a pickle"):
        load_cifar10(copy_with({"data_batch_1": b"<html>404 Not Found</html>" * 100}))


def test_a_pickle_that_is_not_a_dict(copy_with):
    with pytest.raises(CIFAR10DataError, match=r"data_batch_2: holds a list, not the dict of a CIFAR-10 batch"):
        load_cifar10(copy_with({"data_batch_2": _pickled([1, 2, 3])}))


def test_labels_that_are_not_whole_numbers(copy_with):
    with pytest.raises(CIFAR10DataError, match=r"data_batch_3: 'labels' is not a list of whole numbers"):
        load_cifar10(copy_with({"data_batch_3": _batch(labels=["cat"] * 10_000)}))


def test_a_data_entry_that_is_not_an_array(copy_with):
    with pytest.raises(CIFAR10DataError, match=r"'data' should be a uint8 array .* but is a list"):
        load_cifar10(copy_with({"data_batch_1": _batch(data=[[0] * 3072] * 2, labels=[1, 2])}))


def test_the_error_shows_only_its_message_in_a_notebook():
    """IPython calls _render_traceback_ instead of printing the traceback: one line, the fix."""
    err = CIFAR10DataError("data_batch_1: batch file missing. Point CIFAR10_PATH at ...")
    assert err._render_traceback_() == ["CIFAR10DataError: data_batch_1: batch file missing. "
                                        "Point CIFAR10_PATH at ..."]


def test_unexpected_keys(copy_with):
    bad = _pickled({b"images": np.zeros((10, 3072), np.uint8)})
    with pytest.raises(CIFAR10DataError, match=r"has no data or labels entry \(keys found: images\)"):
        load_cifar10(copy_with({"data_batch_2": bad}))


def test_wrong_array_shape(copy_with):
    bad = _batch(data=np.zeros((10_000, 32, 32, 3), np.uint8))
    with pytest.raises(CIFAR10DataError, match=r"'data' should be a uint8 array of shape \(n, 3072\)"
                                               r".*shape \(10000, 32, 32, 3\)"):
        load_cifar10(copy_with({"data_batch_1": bad}))


def test_wrong_dtype(copy_with):
    bad = _batch(data=np.zeros((10_000, 3072), np.float64))
    with pytest.raises(CIFAR10DataError, match=r"but is a float64 array"):
        load_cifar10(copy_with({"data_batch_1": bad}))


def test_labels_outside_0_to_9(copy_with):
    bad = _batch(labels=[10] * 10_000)
    with pytest.raises(CIFAR10DataError, match=r"labels outside 0-9 \(for example 10\)"):
        load_cifar10(copy_with({"data_batch_4": bad}))


def test_labels_and_images_disagree(copy_with):
    bad = _batch(labels=[1] * 9_999)
    with pytest.raises(CIFAR10DataError, match=r"10000 images but 9999 labels"):
        load_cifar10(copy_with({"data_batch_1": bad}))


def test_wrong_number_of_images(copy_with):
    with pytest.raises(CIFAR10DataError, match=r"training files hold 49,000 images; CIFAR-10 has 50,000"):
        load_cifar10(copy_with({"data_batch_5": _batch(n=9_000)}))


def test_train_false_reads_the_test_split_only(copy_with, real_data, archive_folder):
    """Notebook 05 loads the test images alone at the end: the training files are not even read."""
    folder = copy_with({"data_batch_2": _batch(n=9_000)})      # a bad training file
    with pytest.raises(CIFAR10DataError, match="training files hold 49,000"):
        load_cifar10(folder)
    _, (x_test, y_test) = real_data
    for source in (folder, archive_folder):
        (x, y), (xt, yt) = load_cifar10(source, train=False)
        assert x is None and y is None
        assert np.array_equal(xt, x_test) and np.array_equal(yt, y_test)


def test_train_false_does_not_even_open_the_training_files(copy_with, real_data):
    folder = copy_with({"data_batch_2": b"<html>404 Not Found</html>" * 100})   # unreadable if read
    with pytest.raises(CIFAR10DataError, match=r"data_batch_2: could not be read"):
        load_cifar10(folder)
    _, (xt, yt) = load_cifar10(folder, train=False)
    assert np.array_equal(xt, real_data[1][0]) and np.array_equal(yt, real_data[1][1])


def test_too_many_training_images(copy_with):
    with pytest.raises(CIFAR10DataError, match=r"training files hold 51,000 images; CIFAR-10 has 50,000"):
        load_cifar10(copy_with({"data_batch_2": _batch(n=11_000)}))


def test_too_few_test_images(copy_with):
    with pytest.raises(CIFAR10DataError, match=r"test files hold 9,999 images; CIFAR-10 has 10,000"):
        load_cifar10(copy_with({"test_batch": _batch(n=9_999)}))


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused(copy_with, tmp_path):
    marker = tmp_path / "code-ran"
    evil = _pickled({b"data": np.zeros((10_000, 3072), np.uint8), b"labels": _RunsCode(marker)})
    assert b"system" in evil  # the payload is really in the file
    with pytest.raises(CIFAR10DataError, match=r"refused to unpickle.*'posix.system'"):
        load_cifar10(copy_with({"data_batch_1": evil}))
    assert not marker.exists(), "the crafted pickle ran code"


def test_pickle_with_any_other_global_is_refused(copy_with):
    bad = _pickled({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2],
                    b"when": __import__("datetime").date(2009, 1, 1)})
    with pytest.raises(CIFAR10DataError, match=r"refused to unpickle.*'datetime.date'"):
        load_cifar10(copy_with({"data_batch_1": bad}))


def test_corrupt_archive(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"\x1f\x8b\x08\x00" + b"garbage" * 1000)
    with pytest.raises(CIFAR10DataError, match=r"cifar-10-python.tar.gz: the archive is corrupt"):
        load_cifar10(archive)


def test_truncated_archive(batch_dir, tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
        for name in TRAIN_FILES + (TEST_FILE,):
            tar.add(batch_dir / name, arcname=f"{FOLDER}/{name}")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(CIFAR10DataError, match=r"corrupt or truncated"):
        load_cifar10(archive)


@pytest.mark.parametrize("member", ["../evil.py", "/etc/evil", f"{FOLDER}/../../evil"])
def test_archive_member_outside_its_folder_is_refused(tmp_path, member):
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(CIFAR10DataError, match=r"member '.*evil.*' would land outside"):
        load_cifar10(archive)


def test_archive_link_member_is_refused(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(f"{FOLDER}/data_batch_1")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(CIFAR10DataError, match=r"would land outside.*a link"):
        load_cifar10(archive)


def test_archive_without_batches(tmp_path):
    archive = tmp_path / "other.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("README")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(CIFAR10DataError, match=rf"has no member '{FOLDER}/data_batch_1'"):
        load_cifar10(archive)


def test_make_test_accepts_the_archive_the_docs_recommend(archive_folder, tmp_path):
    """`CIFAR10_PATH=/shared` holding only cifar-10-python.tar.gz: the session unpacks it once,
    and tests that need the batch files one by one (batch_dir) run on the unpacked copy."""
    import subprocess
    import sys
    env = dict(os.environ, CIFAR10_PATH=str(archive_folder))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_data.py::test_channel_order_matches_the_official_layout"],
                          cwd=Path(__file__).resolve().parent.parent, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout
