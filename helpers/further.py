"""Notebook 05's recipe, shared with its worked solutions, `make bench` and the tests.

- `count_macs(model)`, `layer_macs(layer)`: multiply-adds per image, counted layer by layer;
- `augment(images, rng)`: random horizontal flips and pad-and-crop translations, vectorised
  NumPy on uint8 or float arrays, outside the model (so the compiled training step stays
  compiled on every backend);
- `AugmentedImages`: a `keras.utils.PyDataset` that serves a freshly augmented copy of the
  training images each epoch;
- `build_fast_model(...)`: the final model (three convolution blocks with batch
  normalisation and a global max-pool head);
- `one_cycle_sgd(...)`: SGD with Nesterov momentum under a warm-up-then-cosine schedule.
"""
from __future__ import annotations

import math

import keras
import numpy as np

from .data import convert_data_format


def count_macs(model) -> int:
    """Multiply-adds one image costs in the forward pass: the sum of `layer_macs` over layers."""
    return sum(layer_macs(layer) for layer in _leaf_layers(model))


def layer_macs(layer) -> int:
    """Multiply-adds one image costs in this layer, from the layer's own shapes.

    A `Conv2D` layer costs (output rows x output columns) x (kernel rows x kernel columns x
    input channels) x filters; a `Dense` layer costs inputs x units. Everything else (bias,
    activation, pooling, batch normalisation) is one addition or comparison per value, tiny
    next to these, and is not counted, as in the usual "MACs" tables.
    """
    if isinstance(layer, keras.layers.Conv2D):
        _, rows, cols, _ = layer.output.shape
        k_rows, k_cols, in_channels, filters = layer.kernel.shape
        return int(rows * cols * k_rows * k_cols * in_channels * filters)
    if isinstance(layer, keras.layers.Dense):
        inputs, units = layer.kernel.shape
        return int(inputs * units)
    return 0


def _leaf_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


def augment(images, rng, pad=2, flip=True):
    """Flip each image left-right with probability 1/2 and shift it by up to `pad` pixels.

    The shift is a pad-and-crop: the image is padded with `pad` pixels of zeros on every
    side and a random 32x32 window is cut out, a different window for every image
    (`pad=0`: no shift; `flip=False`: no flip). Works
    on a whole batch at once (one NumPy gather, no Python loop over images) and returns a
    new array of the same shape and dtype; `images` is not changed.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"augment() takes a batch of images (n, rows, columns, channels), "
                         f"got shape {images.shape}; for one image use images[None].")
    n, rows, cols, _ = images.shape
    flipped = rng.random(n) < (0.5 if flip else 0.0)
    out = np.where(flipped[:, None, None, None], images[:, :, ::-1], images)
    if pad:
        padded = np.pad(out, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        dy = rng.integers(0, 2 * pad + 1, n)
        dx = rng.integers(0, 2 * pad + 1, n)
        r = dy[:, None] + np.arange(rows)[None, :]                     # (n, rows)
        c = dx[:, None] + np.arange(cols)[None, :]                     # (n, cols)
        out = padded[np.arange(n)[:, None, None], r[:, :, None], c[:, None, :]]
    return out


class AugmentedImages(keras.utils.PyDataset):
    """Batches for `model.fit` from the raw uint8 images and labels, reshuffled every epoch.

    Each batch is augmented as it is served, with its own random flips and shifts, so no
    two epochs show the model the same pictures, and then converted by the series' own
    `convert_data_format` (float32 in [0, 1], one-hot labels). Converting batch by batch
    keeps only the uint8 images in memory (150 MB for 50,000, against 600 MB as float32).
    `augment=False` serves the images as they are (shuffled), for variants without it;
    `pad` and `flip` are passed on to `augment`.
    """

    def __init__(self, x, y, batch_size, seed=0, augment=True, pad=2, flip=True, **kwargs):
        super().__init__(**kwargs)
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels: they must match one to one.")
        self.x, self.y, self.batch_size, self.do_augment = x, y, int(batch_size), augment
        self.pad, self.flip = pad, flip
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        take = np.sort(self.order[index * self.batch_size:(index + 1) * self.batch_size])
        x = self.x[take]
        if self.do_augment:
            x = augment(x, self.rng, pad=self.pad, flip=self.flip)
        return convert_data_format(x, self.y[take])

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.x))


def build_fast_model(stem=24, widths=(32, 64, 128), input_shape=(32, 32, 3), num_classes=10,
                     batch_norm=True, seed=None, name="fast_cnn"):
    """The final model of notebook 05, uncompiled: a stem convolution and three blocks.

    stem: Conv2D(stem, 3x3) -> BatchNorm -> ReLU, at 32x32
    block(w), three times: Conv2D(w, 3x3) -> MaxPool 2x2 -> BatchNorm -> ReLU
                           -> Conv2D(w, 3x3) -> BatchNorm -> ReLU
    head: GlobalMaxPooling2D -> Dense(num_classes, softmax)

    Pooling right after each block's first convolution makes its second convolution
    four times cheaper. Convolutions have no bias: the batch normalisation that follows
    adds its own. `batch_norm=False` gives the same network without it (the ablation).
    """
    if seed is not None:
        keras.utils.set_random_seed(seed)
    layers = keras.layers

    def conv(width, label):
        out = [layers.Conv2D(width, 3, padding="same", use_bias=not batch_norm, name=f"{label}_conv")]
        return out

    def norm_act(label):
        out = [layers.BatchNormalization(momentum=0.9, name=f"{label}_bn")] if batch_norm else []
        return out + [layers.ReLU(name=f"{label}_relu")]

    stack = [keras.Input(shape=input_shape)]
    stack += conv(stem, "stem") + norm_act("stem")
    for i, width in enumerate(widths, start=1):
        stack += conv(width, f"block{i}a") + [layers.MaxPooling2D(2, name=f"block{i}_pool")]
        stack += norm_act(f"block{i}a")
        stack += conv(width, f"block{i}b") + norm_act(f"block{i}b")
    stack += [layers.GlobalMaxPooling2D(name="global_max_pool"),
              layers.Dense(num_classes, activation="softmax", name="softmax_out")]
    return keras.Sequential(stack, name=name)


def one_cycle_sgd(peak_learning_rate, total_steps, warmup_fraction=0.2, momentum=0.9,
                  weight_decay=5e-4):
    """SGD with Nesterov momentum; the learning rate climbs linearly from 0 to its peak over
    the first `warmup_fraction` of the steps, then falls along a cosine to 0 at the end."""
    warmup = max(1, int(total_steps * warmup_fraction))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, warmup_target=peak_learning_rate, warmup_steps=warmup,
        decay_steps=max(1, total_steps - warmup), alpha=0.0)
    return keras.optimizers.SGD(learning_rate=schedule, momentum=momentum, nesterov=True,
                                weight_decay=weight_decay)
