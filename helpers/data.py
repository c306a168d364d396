"""Loading CIFAR-10 (online or from a local copy) and the article's format conversion.

`load_cifar10()` returns exactly what `keras.datasets.cifar10.load_data()` returns:
uint8 images of shape (N, 32, 32, 3) and uint8 labels of shape (N, 1), 50,000 for
training and 10,000 for testing. A local copy is read from, in this order, the
`path` argument or the `CIFAR10_PATH` environment variable; without either, Keras
downloads the official archive once and caches it under ~/.keras/datasets.

The official files are Python pickles, and unpickling can run arbitrary code, so
the reader below accepts only what the CIFAR-10 batches really contain: dicts,
lists, strings, numbers and numpy arrays. Anything else is refused.
"""
from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path, PurePosixPath

import keras
import numpy as np

from .settings import short_path

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")
NUM_CLASSES = len(CLASS_NAMES)

FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
N_TRAIN, N_TEST = 50_000, 10_000
PIXELS = 32 * 32 * 3

FIX = ("Point CIFAR10_PATH (or the path argument) at a complete copy: the "
       f"'{FOLDER}' folder, the folder that holds it, or the official '{ARCHIVE}'. "
       "A fresh copy comes from https://www.cs.toronto.edu/~kriz/cifar.html.")

# The only globals a CIFAR-10 batch may name: numpy's array reconstruction.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class CIFAR10DataError(ValueError):
    """A local CIFAR-10 copy is missing, damaged or not what it claims to be."""

    def _render_traceback_(self):  # IPython shows only the message: it names the fix
        return [f"{type(self).__name__}: {self}"]


class _BatchUnpickler(pickle.Unpickler):
    def __init__(self, file, source):
        super().__init__(file, encoding="bytes")
        self.source = source

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise CIFAR10DataError(
                f"{self.source}: refused to unpickle it, because it references "
                f"'{module}.{name}'. A real CIFAR-10 batch only holds numpy arrays, "
                "and loading anything else could run code. " + FIX)
        if module == "numpy.core.multiarray":  # pickles written by numpy 1.x
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def _text(key):
    return key.decode() if isinstance(key, bytes) else key


def _read_batch(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Unpickle and validate one batch; return uint8 images (n, 32, 32, 3) and labels (n,)."""
    if not raw:
        raise CIFAR10DataError(f"{source}: the file is empty. " + FIX)
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), source).load()
    except CIFAR10DataError:
        raise
    except (EOFError, pickle.UnpicklingError, ValueError, TypeError,
            AttributeError, IndexError, KeyError, MemoryError) as err:
        raise CIFAR10DataError(
            f"{source}: could not be read as a CIFAR-10 batch; it is truncated or not "
            f"a pickle at all ({type(err).__name__}: {err}). " + FIX) from None
    if not isinstance(batch, dict):
        raise CIFAR10DataError(
            f"{source}: holds a {type(batch).__name__}, not the dict of a CIFAR-10 batch. " + FIX)
    batch = {_text(k): v for k, v in batch.items()}
    missing = {"data", "labels"} - batch.keys()
    if missing:
        raise CIFAR10DataError(
            f"{source}: has no {' or '.join(sorted(missing))!s} entry (keys found: "
            f"{', '.join(sorted(map(str, batch)))}); it is not a CIFAR-10 batch. " + FIX)
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != PIXELS:
        found = (f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray)
                 else type(data).__name__)
        raise CIFAR10DataError(
            f"{source}: 'data' should be a uint8 array of shape (n, {PIXELS}), "
            f"one row of 32x32x3 pixels per image, but is a {found}. " + FIX)
    try:
        labels = np.asarray(batch["labels"], dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise CIFAR10DataError(f"{source}: 'labels' is not a list of whole numbers. " + FIX) from None
    if len(labels) != len(data):
        raise CIFAR10DataError(
            f"{source}: has {len(data)} images but {len(labels)} labels. " + FIX)
    bad = labels[(labels < 0) | (labels >= NUM_CLASSES)]
    if bad.size:
        raise CIFAR10DataError(
            f"{source}: has labels outside 0-9 (for example {int(bad[0])}); "
            "CIFAR-10 has ten classes numbered 0 to 9. " + FIX)
    # rows hold the 1024 red values, then green, then blue: (n, 3, 32, 32) -> (n, 32, 32, 3)
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels.astype(np.uint8)


class _Assembler:
    """Collects one split's batches into a single array, filled batch by batch as each file is
    read, so that loading never holds the batches and their concatenation at once (about 150 MB
    less at the peak for the training set)."""

    def __init__(self, expected):
        self.expected, self.count = expected, 0
        self.images = np.empty((expected, 32, 32, 3), dtype=np.uint8)
        self.labels = np.empty((expected, 1), dtype=np.uint8)

    def add(self, part):
        images, labels = part
        end = self.count + len(images)
        if end <= self.expected:
            self.images[self.count:end] = images
            self.labels[self.count:end, 0] = labels
        self.count = end

    def result(self, source, what):
        if self.count != self.expected:
            raise CIFAR10DataError(
                f"{source}: the {what} files hold {self.count:,} images; CIFAR-10 has "
                f"{self.expected:,}. The copy is incomplete or not CIFAR-10. " + FIX)
        return self.images, self.labels


def _load_from_folder(folder: Path, train_split=True):
    for name in TRAIN_FILES + (TEST_FILE,):
        if not (folder / name).is_file():
            raise CIFAR10DataError(
                f"{folder / name}: batch file missing (a copy needs {', '.join(TRAIN_FILES)} "
                f"and {TEST_FILE}). " + FIX)
    train, test = _Assembler(N_TRAIN if train_split else 0), _Assembler(N_TEST)
    for name in (TRAIN_FILES if train_split else ()) + (TEST_FILE,):
        file = folder / name
        (test if name == TEST_FILE else train).add(_read_batch(file.read_bytes(), str(file)))
    return _results(train, test, folder, train_split)


def _results(train, test, source, train_split):
    test_arrays = test.result(source, "test")
    return (train.result(source, "training") if train_split else (None, None)), test_arrays


def _member_is_safe(member: tarfile.TarInfo) -> bool:
    path = PurePosixPath(member.name)
    return (not path.is_absolute() and ".." not in path.parts
            and not member.issym() and not member.islnk() and not member.isdev())


def _load_from_archive(archive: Path, train_split=True):
    train, test = _Assembler(N_TRAIN if train_split else 0), _Assembler(N_TEST)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            unsafe = [m.name for m in members if not _member_is_safe(m)]
            if unsafe:
                raise CIFAR10DataError(
                    f"{archive}: refused, because member '{unsafe[0]}' would land outside "
                    "the archive's folder (an absolute path, '..' or a link). The official "
                    "archive has no such member; this one may be malicious. " + FIX)
            by_name = {PurePosixPath(m.name).name: m for m in members
                       if m.isfile() and PurePosixPath(m.name).parent.name == FOLDER}
            for name in TRAIN_FILES + (TEST_FILE,):
                if name not in by_name:
                    raise CIFAR10DataError(
                        f"{archive}: has no member '{FOLDER}/{name}'; it is not the "
                        "official CIFAR-10 python archive, or it is incomplete. " + FIX)
            for name in (TRAIN_FILES if train_split else ()) + (TEST_FILE,):
                raw = tar.extractfile(by_name[name]).read()
                (test if name == TEST_FILE else train).add(_read_batch(raw, f"{archive}:{FOLDER}/{name}"))
    except CIFAR10DataError:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError) as err:
        raise CIFAR10DataError(
            f"{archive}: the archive is corrupt or truncated ({type(err).__name__}: {err}). "
            "Download it again or unpack a good copy. " + FIX) from None
    return _results(train, test, archive, train_split)


def resolve_local_copy(path) -> Path:
    """Find the batch folder or archive that `path` points at (folder, its parent or archive)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CIFAR10DataError(f"{path}: no such file or folder. " + FIX)
    if path.is_file():
        return path
    if (path / FOLDER).is_dir():
        return path / FOLDER
    if (path / ARCHIVE).is_file() and not (path / TRAIN_FILES[0]).exists():
        return path / ARCHIVE
    if any((path / n).exists() for n in TRAIN_FILES + (TEST_FILE,)):
        return path
    raise CIFAR10DataError(
        f"{path}: holds no CIFAR-10 copy (expected {', '.join(TRAIN_FILES)} and "
        f"{TEST_FILE}, a '{FOLDER}' folder, or '{ARCHIVE}'). " + FIX)


def describe_source(path=None) -> str:
    """Say in words where `load_cifar10(path)` will read the data from."""
    path = path or os.environ.get("CIFAR10_PATH")
    if path:
        return f"local copy: {short_path(resolve_local_copy(path))}"
    return "keras.datasets.cifar10 (downloaded once, then cached in ~/.keras/datasets)"


def load_cifar10(path=None, *, train=True):
    """Load CIFAR-10 as ``(x_train, y_train), (x_test, y_test)``.

    Same arrays as ``keras.datasets.cifar10.load_data()``: uint8 images (N, 32, 32, 3)
    and uint8 labels (N, 1), N = 50,000 / 10,000. `path` (or the environment variable
    CIFAR10_PATH) may name a ``cifar-10-batches-py`` folder, its parent, or the official
    ``cifar-10-python.tar.gz``; without one, Keras downloads and caches the data.
    `train=False` reads the test split only and returns ``(None, None), (x_test, y_test)``
    (from a local copy, the training files are then not read at all: 150 MB less memory).
    Raises CIFAR10DataError, naming the file and the fix, for any bad local copy.
    """
    path = path or os.environ.get("CIFAR10_PATH")
    if path:
        source = resolve_local_copy(path)
        load = _load_from_archive if source.is_file() else _load_from_folder
        return load(source, train_split=train)
    import keras
    try:
        splits = keras.datasets.cifar10.load_data()
        return splits if train else ((None, None), splits[1])
    except Exception as err:  # no network, blocked download, broken cache
        raise CIFAR10DataError(
            f"Downloading CIFAR-10 through keras.datasets failed ({type(err).__name__}: "
            f"{err}). On a machine without internet, copy the official '{ARCHIVE}' (or its "
            f"'{FOLDER}' folder) there and set CIFAR10_PATH to it.") from err


def convert_data_format(x, y, num_classes=NUM_CLASSES):
    """The article's conversion, done right: images to float32 in [0, 1], labels one-hot.

    Divides by 255, the largest value a uint8 pixel can hold, so training and test
    images get the same scale whatever they contain (the article divided each set
    by its own maximum). float32, not float64: half the memory, and Keras computes
    in float32 anyway.
    """
    import keras

    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise TypeError(f"convert_data_format expects the uint8 images load_cifar10() returns, "
                        f"got {x.dtype}; convert each array once, from the raw data.")
    x = x.astype("float32")
    x /= 255.0  # in place: no second full-size copy
    y = keras.utils.to_categorical(np.asarray(y).reshape(-1), num_classes).astype("float32")
    return x, y


class ImageBatches(keras.utils.PyDataset):
    """The raw uint8 images and labels, served to `fit`, `evaluate` or `predict` one batch at a time.

    Each batch is converted as it is served, by the series' `convert_data_format` (float32
    in [0, 1], one-hot labels), so the float32 copy of the whole set is never made: 45,000
    training images take 138 MB as uint8, 553 MB as float32. And Keras gets no array to
    copy: given NumPy arrays, `fit` on the TensorFlow backend first copies them whole into
    TensorFlow's memory (another 553 MB for those 45,000 float32 images).

    `shuffle=True` (for training) draws a new random order of the images every epoch from a
    generator seeded with `seed`, so each epoch's batches hold other images. (`fit` also
    shuffles the order in which it asks for the batches, with Python's `random`, unless it
    is given `shuffle=False`; `keras.utils.set_random_seed` seeds that too, so a re-run
    from the same seeds sees the same batches in the same order.) `shuffle=False` (for
    evaluating) serves the images in their order. Either way the last batch is shorter
    when `batch_size` does not divide the number of images.
    """

    def __init__(self, x, y, batch_size, *, shuffle=False, seed=0, **kwargs):
        super().__init__(**kwargs)
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype != np.uint8 or x.ndim != 4:
            raise TypeError(f"ImageBatches expects the uint8 images load_cifar10() returns, shape (N, 32, 32, 3); "
                            f"got {x.dtype} of shape {x.shape}. Pass the raw images: it converts each batch itself.")
        if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
            raise ValueError(f"ImageBatches expects class numbers, shape (N,) or (N, 1) as load_cifar10() returns; "
                             f"got labels of shape {y.shape}. Pass the raw labels: it one-hot encodes each batch itself.")
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels: they must match one to one.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number of images, 1 or more; got {batch_size!r}.")
        self.x, self.y, self.batch_size, self.shuffle = x, y, int(batch_size), shuffle
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x)) if shuffle else np.arange(len(x))

    def __len__(self):
        return -(-len(self.x) // self.batch_size)   # batches per epoch, the last one maybe shorter

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        # this batch's images, their indices sorted: the same images, read from memory in order
        take = np.sort(self.order[index * self.batch_size:(index + 1) * self.batch_size])
        return convert_data_format(self.transform(self.x[take]), self.y[take])

    def transform(self, images):
        """What happens to a batch's uint8 images before the conversion: nothing here. A subclass
        (notebook 05's `AugmentedImages`) changes them here, and must return uint8 images again."""
        return images

    def on_epoch_end(self):
        if self.shuffle:
            self.order = self.rng.permutation(len(self.x))
