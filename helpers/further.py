"""Notebook 05's experiments, shared with its worked solutions, `make bench` and the tests.

- `count_macs(model)`, `layer_macs(layer)`: multiply-adds per image, counted layer by layer;
- `augment(images, rng)`: random horizontal flips and pad-and-crop translations, vectorised
  NumPy on uint8 or float arrays, outside the model (so the compiled training step stays
  compiled on every backend);
- `AugmentedImages`: a `keras.utils.PyDataset` that serves a freshly augmented copy of the
  training images each epoch;
- `ARTICLE`, `ABLATION`, `RECIPE`: the ablation as data. Every row is a configuration (a
  dict of named settings) that differs from the row it starts from in the settings it names,
  and nothing else; `ablation_configs()` spells each row out in full;
- `build_network(config, ...)`, `compile_network(model, config, steps)`: one builder for every
  row, the article's model and the final recipe included; `restart_network(model, config, seed)`
  trains a compiled network again from another seed without compiling a new one;
- `whitening_filters(images)`: the patch-whitening first layer's fixed weights;
- `identity_kernel(kernel)`: the identity start of a block convolution (setting `identity_init`);
- `one_cycle_sgd(...)`: SGD with Nesterov momentum under a warm-up-then-cosine schedule, as
  `BiasScaledSGD` when the batch-normalisation offsets learn faster (setting `bias_lr_scale`).
"""
from __future__ import annotations

import keras
import numpy as np

from .data import ImageBatches
from .model import build_article_model

# --------------------------------------------------------------------------- multiply-adds

# Layers that hold weights but cost no multiply-adds worth counting (one operation per value).
_CHEAP_WEIGHTED = (keras.layers.BatchNormalization, keras.layers.LayerNormalization)


def count_macs(model) -> int:
    """Multiply-adds one image costs in the forward pass: the sum of `layer_macs` over layers."""
    return sum(layer_macs(layer) for layer in _leaf_layers(model))


def layer_macs(layer) -> int:
    """Multiply-adds one image costs in this layer, from the layer's own shapes.

    A `Conv2D` layer costs (output rows x output columns) x (kernel rows x kernel columns x
    input channels) x filters; a `Dense` layer costs inputs x units. Everything else (bias,
    activation, pooling, batch normalisation) is one addition or comparison per value, tiny
    next to these, and is not counted, as in the usual "MACs" tables. A layer with weights
    that this function does not know how to count (a depthwise, separable or transposed
    convolution, a channels-first convolution, an attention layer...) raises a ValueError
    rather than being counted as free.
    """
    if type(layer) is keras.layers.Conv2D:
        if layer.data_format != "channels_last":
            raise ValueError(f"layer_macs() counts channels-last convolutions only; {layer.name!r} "
                             f"is {layer.data_format}. Build the model channels-last to count it.")
        if layer.groups != 1:
            raise ValueError(f"layer_macs() cannot count the grouped convolution {layer.name!r} "
                             f"(groups={layer.groups}).")
        _, rows, cols, _ = layer.output.shape
        k_rows, k_cols, in_channels, filters = layer.kernel.shape
        return int(rows * cols * k_rows * k_cols * in_channels * filters)
    if type(layer) is keras.layers.Dense:
        inputs, units = layer.kernel.shape
        return int(inputs * units)
    if layer.weights and not isinstance(layer, _CHEAP_WEIGHTED):
        raise ValueError(f"layer_macs() does not know how to count {type(layer).__name__} "
                         f"{layer.name!r}, a layer with weights; it counts Conv2D (channels-last) "
                         f"and Dense only. Count this layer by hand.")
    return 0


def _leaf_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


# --------------------------------------------------------------------------- augmentation

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


class AugmentedImages(ImageBatches):
    """`ImageBatches` for training, reshuffled every epoch and augmented as they are served.

    Each batch gets its own random flips and shifts (`augment`, with `pad` and `flip`), so
    no two epochs show the model the same pictures, and is then converted by the series'
    own `convert_data_format`, like every `ImageBatches`. `augment=False` serves the images
    as they are (shuffled), for the variants without augmentation.
    """

    def __init__(self, x, y, batch_size, seed=0, augment=True, pad=2, flip=True, **kwargs):
        super().__init__(x, y, batch_size, shuffle=True, seed=seed, **kwargs)
        self.do_augment, self.pad, self.flip = augment, pad, flip

    def transform(self, images):
        return augment(images, self.rng, pad=self.pad, flip=self.flip) if self.do_augment else images


# --------------------------------------------------------------------------- the ablation as data

# The article's model and training settings, spelled out as the settings the ablation changes.
ARTICLE = {
    "body": "article",          # "article": two 3x3 convolutions at 32x32; "blocks": a stem and three blocks
    "head": "dense500",         # "dense500": Flatten -> Dense(500); "average" / "max": global pooling
    "max_norm": True,           # MaxNorm(3) on the kernels, as the article
    "batch_norm": False,        # batch normalisation after every convolution
    "first_layer": "conv",      # "conv": a trained 3x3 convolution (24 filters in the blocks body);
                                # "whitening": a fixed 2x2 patch-whitening convolution (24 filters)
    "widths": (32, 64, 128),    # the three blocks' widths (body "blocks" only)
    "optimizer": "adam",        # "adam" (constant rate) or "sgd" (Nesterov, one-cycle schedule)
    "learning_rate": 1e-3,      # Adam's rate, or SGD's peak rate
    "batch_size": 32,
    "weight_decay": 0.0,        # L2 penalty on every kernel, added to the loss (coupled)
    "augment": False,           # random flips and 2-pixel shifts of the training images
    "label_smoothing": 0.0,
    "logit_scale": 1.0,         # the logits are multiplied by this before the softmax
    "identity_init": False,     # the blocks' convolutions start as identity maps (body "blocks" only)
    "bias_lr_scale": 1.0,       # the batch-normalisation biases learn this many times faster (SGD only)
}

# (row, label, the row it starts from, the settings it changes). Every row names what it
# changes; tests/test_further.py checks that nothing else differs.
ABLATION = [
    ("A", "the article's model (notebook 03)", None, {}),
    ("B", "global average pooling instead of Flatten + Dense(500)", "A", {"head": "average"}),
    ("C", "a deeper body: a stem and three blocks of two convolutions", "B", {"body": "blocks"}),
    ("D", "global max pooling instead of average", "C", {"head": "max"}),
    ("E", "no MaxNorm constraint", "D", {"max_norm": False}),
    ("F", "batches of 512 instead of 32", "E", {"batch_size": 512}),
    ("G", "SGD with Nesterov momentum and a one-cycle schedule (peak 0.05) instead of Adam", "F",
     {"optimizer": "sgd", "learning_rate": 0.05}),
    ("H", "+ batch normalisation", "G", {"batch_norm": True}),
    ("I", "logits divided by 8 before the softmax", "H", {"logit_scale": 0.125}),
    ("J", "peak learning rate 0.4 instead of 0.05", "I", {"learning_rate": 0.4}),
    ("J0", "(side row) row J without batch normalisation", "J", {"batch_norm": False}),
    ("K", "+ weight decay: an L2 penalty of 5e-4 on every kernel", "J", {"weight_decay": 5e-4}),
    ("L", "+ augmentation: random flips and 2-pixel shifts", "K", {"augment": True}),
    ("M", "+ label smoothing 0.2", "L", {"label_smoothing": 0.2}),
    ("N", "a fixed patch-whitening first layer instead of a trained one", "M", {"first_layer": "whitening"}),
    ("O", "wider blocks: 48, 192, 192 instead of 32, 64, 128", "N", {"widths": (48, 192, 192)}),
    ("O1", "(side row) batch-norm biases learn 64 times faster", "O",
     {"bias_lr_scale": 64.0}),
    ("P", "the block convolutions start as identity maps", "O", {"identity_init": True}),
    ("Q", "peak learning rate 0.8 instead of 0.4", "P", {"learning_rate": 0.8}),
]


def ablation_configs() -> dict:
    """Every ablation row's full configuration, by row name: its base row's, with its changes."""
    configs = {}
    for row, _label, base, changes in ABLATION:
        unknown = set(changes) - set(ARTICLE)
        if unknown:
            raise ValueError(f"ablation row {row} changes unknown settings {sorted(unknown)}")
        configs[row] = {**(ARTICLE if base is None else configs[base]), **changes}
    return configs


# The final recipe: the ablation's last row, trained longer.
RECIPE = ablation_configs()[ABLATION[-1][0]]


# --------------------------------------------------------------------------- building and compiling

def whitening_filters(images, epsilon=5e-4, size=2):
    """Weights of a fixed first layer that whitens 2x2 patches: (kernel, bias), 24 filters.

    Every 2x2 patch of an RGB image is 12 numbers, and neighbouring pixels are strongly
    correlated: most of the variation lies along a few directions (overall brightness),
    little along the others (fine colour edges). This layer projects each patch on the 12
    principal directions of the training patches and divides by each direction's standard
    deviation, so that every direction reaches the next layer at the same scale; the 12
    filters and their negatives (so that a ReLU keeps both signs) make 24. `epsilon`, as a
    fraction of the average variance, keeps the weakest directions (mostly noise) from being
    blown up. Computed from up to 5,000 `images` (uint8, as loaded), in [0, 1] units like
    `convert_data_format`'s output; the bias centres each output on zero.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"whitening_filters() takes RGB images (n, rows, columns, 3), got shape "
                         f"{images.shape}.")
    count, total, outer = 0, np.zeros(size * size * 3), np.zeros((size * size * 3,) * 2)
    for start in range(0, min(len(images), 5_000), 500):      # 500 images at a time: small memory
        x = images[start:start + 500].astype(np.float64) / 255.0
        patches = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(1, 2))
        patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(-1, size * size * 3)  # rows, cols, channel
        count, total, outer = count + len(patches), total + patches.sum(axis=0), outer + patches.T @ patches
    mean = total / count
    cov = outer / count - np.outer(mean, mean)
    variances, directions = np.linalg.eigh(cov)
    scale = 1.0 / np.sqrt(variances + epsilon * np.trace(cov) / len(cov))
    filters = directions * scale                               # one whitening direction per column
    filters = np.concatenate([filters, -filters], axis=1)
    kernel = filters.reshape(size, size, 3, -1).astype(np.float32)
    bias = (-mean @ filters).astype(np.float32)
    return kernel, bias


def build_network(config, input_shape=(32, 32, 3), num_classes=10, whitening=None, seed=None,
                  name="network"):
    """The network a configuration describes, uncompiled (`compile_network` compiles it).

    body "article": notebook 03's model itself, `build_article_model(head=..., compile=False)`
                    (rows A and B): it takes the article's settings and head "dense500" or "average";
    body "blocks":  a first layer at 32x32, then three blocks, each
                    Conv2D(w, 3x3) -> MaxPool 2x2 -> [BatchNorm] -> ReLU -> Conv2D(w, 3x3) -> [BatchNorm] -> ReLU;
    head "dense500": Flatten -> Dense(500, ReLU) -> Dense(num_classes, softmax) (the article's);
    head "average" / "max": global average or max pooling -> Dense(num_classes, softmax).
    With `logit_scale` other than 1, the last Dense layer has no activation; its outputs (the
    logits) are multiplied by `logit_scale` (a `Rescaling` layer) before a `Softmax` layer.

    The first layer is a trained Conv2D(24, 3x3) (-> [BatchNorm] -> ReLU), or, with
    `first_layer="whitening"`, a fixed Conv2D(24, 2x2) whose weights come from
    `whitening` (the pair `whitening_filters` returns) -> ReLU. Convolutions followed by batch
    normalisation have no bias (the normalisation adds its own) and no learned scale in the
    normalisation (the next convolution or softmax layer scales anyway).
    """
    unknown = set(config) - set(ARTICLE)
    missing = set(ARTICLE) - set(config)
    if unknown or missing:
        raise ValueError(f"a network configuration needs exactly the settings of ARTICLE; "
                         f"unknown: {sorted(unknown)}, missing: {sorted(missing)}")
    if config["body"] not in ("article", "blocks") or config["head"] not in ("dense500", "average", "max"):
        raise ValueError(f"unknown body {config['body']!r} or head {config['head']!r}")
    if config["first_layer"] == "whitening" and whitening is None:
        raise ValueError("first_layer='whitening' needs its fixed weights: pass "
                         "whitening=whitening_filters(x_train).")
    if config["body"] == "article":
        changed = {k for k in ("max_norm", "batch_norm", "first_layer", "weight_decay", "logit_scale",
                               "identity_init", "bias_lr_scale")
                   if config[k] != ARTICLE[k]}
        if changed or config["head"] == "max":
            raise ValueError(f"body 'article' is notebook 03's model (helpers.build_article_model), with "
                             f"head 'dense500' or 'average' and the article's other settings; this "
                             f"configuration changes {sorted(changed) or ['head']}: use body 'blocks'.")
        return build_article_model(input_shape, num_classes, seed=seed, head=config["head"], compile=False)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    layers = keras.layers
    bn = config["batch_norm"]
    constraint = keras.constraints.MaxNorm(3) if config["max_norm"] else None
    penalty = keras.regularizers.L2(config["weight_decay"]) if config["weight_decay"] else None

    def conv(width, label, size=3):
        return [layers.Conv2D(width, size, padding="same", use_bias=not bn, kernel_constraint=constraint,
                              kernel_regularizer=penalty, name=f"{label}_conv")]

    def norm_relu(label):
        return ([layers.BatchNormalization(momentum=0.9, scale=False, name=f"{label}_bn")] if bn else []) + [
            layers.ReLU(name=f"{label}_relu")]

    stack = [keras.Input(shape=input_shape)]
    if config["first_layer"] == "whitening":
        stack += [layers.Conv2D(24, 2, padding="valid", trainable=False, name="whitening_conv"),
                  layers.ReLU(name="whitening_relu")]
    else:
        stack += conv(24, "stem") + norm_relu("stem")
    for i, width in enumerate(config["widths"], start=1):
        stack += conv(width, f"block{i}a") + [layers.MaxPooling2D(2, name=f"block{i}_pool")]
        stack += norm_relu(f"block{i}a") + conv(width, f"block{i}b") + norm_relu(f"block{i}b")
    if config["head"] == "dense500":
        stack += [layers.Flatten(name="flatten"),
                  layers.Dense(500, activation="relu", kernel_constraint=constraint,
                               kernel_regularizer=penalty, name="dense_500")]
    else:
        stack += [layers.GlobalAveragePooling2D(name="global_average") if config["head"] == "average"
                  else layers.GlobalMaxPooling2D(name="global_max")]
    if config["logit_scale"] == 1.0:                        # the article puts no MaxNorm on its output layer
        stack += [layers.Dense(num_classes, activation="softmax", kernel_regularizer=penalty,
                               name="softmax_out")]
    else:
        stack += [layers.Dense(num_classes, kernel_regularizer=penalty, name="logits"),
                  layers.Rescaling(config["logit_scale"], name="logit_scale"),
                  layers.Softmax(name="softmax_out")]
    model = keras.Sequential(stack, name=name)
    if config["first_layer"] == "whitening":
        model.get_layer("whitening_conv").set_weights(list(whitening))
    if config["identity_init"]:
        for layer in model.layers:
            if layer.name.startswith("block") and layer.name.endswith("_conv"):
                layer.kernel.assign(identity_kernel(keras.ops.convert_to_numpy(layer.kernel)))
    return model


def identity_kernel(kernel):
    """A 3x3 convolution's kernel with its first filters replaced by identity maps.

    Filter i (for i below both the input and the output channel count) becomes a single 1 at
    the centre of its window, on input channel i: it copies channel i through unchanged. The
    other filters keep their random start. A block then starts by passing its input on, and
    training bends it away from that (`torch.nn.init.dirac_` does the same in PyTorch).
    """
    kernel = np.array(kernel, copy=True)
    rows, cols, in_channels, filters = kernel.shape
    n = min(in_channels, filters)
    kernel[..., :n] = 0.0
    kernel[rows // 2, cols // 2, np.arange(n), np.arange(n)] = 1.0
    return kernel


def restart_network(model, config, seed, whitening=None):
    """Put a compiled network back at the start of training, as `build_network` starts it.

    The weights become those `build_network(config, whitening=whitening, seed=seed)` gives
    (batch-normalisation statistics included), and the optimiser's state goes back to zero: step 0
    of the learning-rate schedule, no momentum, and for Adam no running averages (its learning
    rate stays). Training it again then builds no new compiled training step. TensorFlow keeps
    much of the memory of every network it has trained, even after `keras.utils.clear_session()`
    (measured on a 2-core CPU: about 30 MB for each of notebook 05's small networks, about 250 MB
    for the article's), so a kernel that trains fifty new networks grows by gigabytes, and one
    that restarts a few does not.
    """
    start = build_network(config, whitening=whitening, seed=seed)
    if [w.shape for w in start.weights] != [w.shape for w in model.weights]:
        raise ValueError(f"restart_network() got a network that is not the one this configuration "
                         f"builds ({model.name!r}): build and compile it with build_network(config) "
                         f"and compile_network first.")
    model.set_weights(start.get_weights())
    for variable in model.optimizer.variables:
        if variable.name != "learning_rate":      # Adam's constant rate is a variable too: keep it
            variable.assign(keras.ops.zeros_like(variable))
    return model


def compile_network(model, config, total_steps, jit_compile="auto"):
    """Compile `model` with the configuration's optimiser, loss and metric.

    "adam": Adam at a constant `learning_rate`; "sgd": `one_cycle_sgd(learning_rate,
    total_steps)`. Categorical cross-entropy with the configuration's label smoothing. The
    weight decay is not here: it is the L2 penalty `build_network` puts on the kernels.
    """
    if config["optimizer"] == "adam":
        optimizer = keras.optimizers.Adam(config["learning_rate"])
    elif config["optimizer"] == "sgd":
        biases = [layer.beta.path for layer in _leaf_layers(model)
                  if isinstance(layer, keras.layers.BatchNormalization) and layer.center]
        optimizer = one_cycle_sgd(config["learning_rate"], total_steps,
                                  bias_lr_scale=config["bias_lr_scale"], biases=biases)
    else:
        raise ValueError(f"unknown optimizer {config['optimizer']!r}: 'adam' or 'sgd'")
    if config["optimizer"] != "sgd" and config["bias_lr_scale"] != 1.0:
        raise ValueError("bias_lr_scale is a setting of the SGD optimiser; Adam takes one rate for all.")
    model.compile(optimizer=optimizer, metrics=["accuracy"], jit_compile=jit_compile,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=config["label_smoothing"]))
    return model


@keras.saving.register_keras_serializable(package="cifar10_series")
class BiasScaledSGD(keras.optimizers.SGD):
    """Keras' SGD, with a larger learning rate for some variables: `biases` (their paths, as
    `variable.path` gives them) learn `bias_lr_scale` times faster than the other weights."""

    def __init__(self, *args, bias_lr_scale=1.0, biases=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.bias_lr_scale, self.biases = float(bias_lr_scale), list(biases)

    def update_step(self, gradient, variable, learning_rate):
        # a Keras variable has a path; on TensorFlow the optimiser is handed the tf.Variable
        # inside it, whose name is that path followed by ":0"
        path = getattr(variable, "path", None) or variable.name.split(":")[0]
        if self.bias_lr_scale != 1.0 and path in self.biases:
            learning_rate = learning_rate * self.bias_lr_scale
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "bias_lr_scale": self.bias_lr_scale, "biases": self.biases}


def one_cycle_sgd(peak_learning_rate, total_steps, warmup_fraction=0.2, momentum=0.9,
                  bias_lr_scale=1.0, biases=()):
    """SGD with Nesterov momentum; the learning rate climbs linearly from 0 to its peak over
    the first `warmup_fraction` of the steps, then falls along a cosine to 0 at the end.

    No weight decay here on purpose: Keras' `weight_decay=` argument is *decoupled* (it
    shrinks the weights by learning rate x decay at each step, outside the momentum), which
    at the same number is about ten times weaker than the usual L2 penalty with momentum 0.9.
    The series puts the usual L2 penalty on the kernels instead (`build_network`).
    With `bias_lr_scale` other than 1 it returns a `BiasScaledSGD`, whose `biases` (variable
    paths) learn that many times faster.
    """
    if total_steps < 1:
        raise ValueError(f"one_cycle_sgd() needs at least one training step, got {total_steps}.")
    warmup = max(1, int(total_steps * warmup_fraction))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, warmup_target=peak_learning_rate, warmup_steps=warmup,
        decay_steps=max(1, total_steps - warmup), alpha=0.0)
    if bias_lr_scale == 1.0:
        return keras.optimizers.SGD(learning_rate=schedule, momentum=momentum, nesterov=True)
    return BiasScaledSGD(learning_rate=schedule, momentum=momentum, nesterov=True,
                         bias_lr_scale=bias_lr_scale, biases=biases)
