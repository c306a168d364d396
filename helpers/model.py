"""The article's model, rebuilt with Keras 3 public APIs. One function, one source of truth."""
from __future__ import annotations

import keras


def build_article_model(input_shape=(32, 32, 3), num_classes=10, seed=None, *,
                        conv_axis=0, pooling=False, head="dense500", optimizer="adam", compile=True):
    """Build and compile the article's CNN, exactly as it describes it.

    Two 3x3 convolutions with 32 filters ('same' padding, ReLU, MaxNorm(3) on the
    kernel), Flatten, Dense(500, ReLU, MaxNorm(3)), Dense(10, softmax); Adam,
    categorical cross-entropy, accuracy. Returns a new model on every call, so
    re-running a notebook cell never stacks layers onto an old one. Layers have
    fixed names, so the summary reads the same on every call. With `seed`, the
    initial weights are the same on every call too.

    The keyword options are not the article's: each makes one change to it, for the
    exercises and notebook 05, and their defaults give the article's model.
    `conv_axis`: the axis MaxNorm measures on the convolutions' kernels ([0, 1, 2]: whole
    filters); `pooling=True`: a 2x2 max pooling after each convolution; `head="average"`:
    global average pooling instead of Flatten and Dense(500); `optimizer`: what `compile`
    gets; `compile=False`: the model uncompiled.
    """
    if head not in ("dense500", "average"):
        raise ValueError(f"head must be 'dense500' (the article's) or 'average', got {head!r}")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    max_norm = keras.constraints.MaxNorm(3)  # default axis=0, as the article's maxnorm(3)
    conv_norm = max_norm if conv_axis == 0 else keras.constraints.MaxNorm(3, axis=conv_axis)
    stack = [keras.Input(shape=input_shape)]
    for i in (1, 2):
        stack.append(keras.layers.Conv2D(32, (3, 3), padding="same", activation="relu",
                                         kernel_constraint=conv_norm, name=f"conv_{i}"))
        if pooling:
            stack.append(keras.layers.MaxPooling2D((2, 2), name=f"pool_{i}"))
    if head == "dense500":
        stack += [keras.layers.Flatten(name="flatten"),
                  keras.layers.Dense(500, activation="relu", kernel_constraint=max_norm,
                                     name="dense_500")]
    else:
        stack.append(keras.layers.GlobalAveragePooling2D(name="global_average"))
    stack.append(keras.layers.Dense(num_classes, activation="softmax", name="softmax_out"))
    model = keras.Sequential(stack, name="article_cnn")
    if compile:
        model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"],
                      jit_compile=_xla())
    return model


def _xla():
    """Compile training steps with XLA where it pays off.

    Keras leaves XLA off for TensorFlow on a CPU-only machine ("auto"); measured on a
    2-core CPU, it made a training step of this model up to 2.5 times faster (the big
    Dense layer's Adam update is fused), and on some days no faster. JAX always compiles; PyTorch keeps its default.
    """
    return True if keras.backend.backend() == "tensorflow" else "auto"
