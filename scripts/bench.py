"""Measure the series on this machine: data, training, prediction, the quick series.

    python scripts/bench.py            # full measurement (make bench), 5-15 minutes
    python scripts/bench.py --reduced  # a two-minute smoke run of its code paths (tests)

Each measurement runs in a fresh Python process, so that its peak memory (RSS) is its
own and settings that must be made before TensorFlow starts (threads, malloc) apply.
Timings are the median of several runs, with min and max. Training time per epoch is
measured over a fixed number of steps after a warm-up (compilation is excluded) and
extrapolated to the 1,407 steps of one epoch at the article's settings (45,000 images,
batch 32). Results are printed as a table and written as JSON to
<artifacts>/bench.json (CIFAR10_ARTIFACTS, default artifacts/).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STEPS_PER_EPOCH = math.ceil(45_000 / 32)
RECIPE_BATCH = 512                                   # notebook 05's final recipe
RECIPE_STEPS_PER_EPOCH = math.ceil(45_000 / RECIPE_BATCH)

# glibc malloc: never hand big buffers back to the OS (no mmap, no trimming), so that each
# step reuses memory instead of faulting fresh pages in.
MALLOC_TUNING = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}

# Candidates for faster training, each measured against "plain": the article's code
# ported to Keras 3 as is (Keras' own default on a CPU-only machine: no XLA).
CANDIDATES = {
    "plain": {"jit": False, "env": {}},
    "xla": {"jit": True, "env": {}},
    "xla + 1 inter-op thread": {"jit": True, "env": {}, "threads": True},
    "xla + bfloat16": {"jit": True, "env": {}, "policy": "mixed_bfloat16"},
    "xla + 8 steps per call": {"jit": True, "env": {}, "steps_per_execution": 8},
    "plain + malloc tuning": {"jit": False, "env": MALLOC_TUNING},
    "xla + malloc tuning": {"jit": True, "env": MALLOC_TUNING},
}


def peak_rss_mb(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB; this is MiB


# ----------------------------------------------------------------------------- children
def _task_load(a):
    from helpers import load_cifar10
    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        load_cifar10()
        times.append(time.perf_counter() - t)
    return {"seconds": times}


def _task_convert(a):
    from helpers import convert_data_format, load_cifar10
    (x, y), (xt, yt) = load_cifar10()
    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        convert_data_format(x, y)
        convert_data_format(xt, yt)
        times.append(time.perf_counter() - t)
    return {"seconds": times}


def _train_data(n):
    from helpers import convert_data_format, load_cifar10
    (x, y), _ = load_cifar10()
    return convert_data_format(x[:n], y[:n])


def _task_train(a):
    import keras

    cand = CANDIDATES[a.candidate]
    if cand.get("threads"):
        import tensorflow as tf
        tf.config.threading.set_inter_op_parallelism_threads(1)
    if cand.get("policy"):
        keras.mixed_precision.set_global_policy(cand["policy"])
    from helpers import build_article_model
    x, y = _train_data(a.steps * 32)
    model = build_article_model(seed=0)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=cand["jit"], steps_per_execution=cand.get("steps_per_execution", 1))
    model.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)     # warm-up, compile
    per_step = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
        per_step.append((time.perf_counter() - t) / a.steps)
    from helpers.further import count_macs
    return {"seconds_per_step": per_step, "macs_per_image": count_macs(model),
            "seconds": [s * STEPS_PER_EPOCH for s in per_step]}


def _task_recipe(a):
    """Notebook 05's final recipe as it trains there: augmented batches of 512, one-cycle SGD,
    the patch-whitening first layer, XLA off (its faster setting on a CPU)."""
    from helpers import load_cifar10
    from helpers.further import (RECIPE, AugmentedImages, build_network, compile_network, count_macs,
                                 whitening_filters)
    (x, y), _ = load_cifar10()
    model = build_network(RECIPE, whitening=whitening_filters(x[:5000]), seed=0)
    compile_network(model, RECIPE, total_steps=10 * RECIPE_STEPS_PER_EPOCH, jit_compile=False)
    model.fit(AugmentedImages(x[:2 * RECIPE_BATCH], y[:2 * RECIPE_BATCH], RECIPE_BATCH), epochs=1,
              verbose=0)                                              # warm-up, compile
    data = AugmentedImages(x[:a.steps * RECIPE_BATCH], y[:a.steps * RECIPE_BATCH], RECIPE_BATCH, seed=0)
    per_step = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        model.fit(data, epochs=1, verbose=0)
        per_step.append((time.perf_counter() - t) / a.steps)
    return {"seconds_per_step": per_step, "macs_per_image": count_macs(model),
            "seconds": [s * RECIPE_STEPS_PER_EPOCH for s in per_step]}


def _task_predict(a):
    from helpers import build_article_model, convert_data_format, load_cifar10
    _, (xt, yt) = load_cifar10()
    x, _ = convert_data_format(xt[:a.images], yt[:a.images])
    model = build_article_model(seed=0)
    model.predict(x[:a.batch], batch_size=a.batch, verbose=0)          # warm-up
    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        model.predict(x, batch_size=a.batch, verbose=0)
        times.append(time.perf_counter() - t)
    return {"seconds": times}


def _task_series(a):
    """Run the notebooks in quick mode as `make run QUICK=1` does; `--notebooks 01` for a part."""
    import keras

    os.environ["CIFAR10_QUICK"] = "1"                # for the notebooks and for get_settings()
    from helpers import convert_data_format, get_settings, load_cifar10
    settings = get_settings()
    paths = sorted((REPO / "notebooks").glob("0[1-4]_*.ipynb"))     # the series, as make run
    if a.notebooks != "all":
        paths = [p for p in paths if p.name.split("_")[0] in a.notebooks.split(",")]
    times, kernels = [], {}
    for _ in range(a.repeats):
        if any(p.name.startswith("03") for p in paths):
            settings.model_path.unlink(missing_ok=True)    # each repeat trains its own model
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, str(REPO / "scripts" / "run_notebooks.py"),
                               *map(str, paths)], check=True, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        for name, mb in re.findall(r"=== (\S+): done in .*?kernel peak RSS ([0-9,]+) MiB", proc.stdout):
            kernels[name] = max(kernels.get(name, 0.0), float(mb.replace(",", "")))
    result = {"seconds": times, "notebooks": [p.name for p in paths],
              "kernel_peak_rss_mb": kernels,
              "children_peak_rss_mb": max([peak_rss_mb(resource.RUSAGE_CHILDREN), *kernels.values()])}
    if settings.model_path.is_file():               # notebook 03 ran: how good and how long
        _, (xt, yt) = load_cifar10()
        x, y = convert_data_format(xt, yt)
        model = keras.models.load_model(settings.model_path)
        result["quick_test_accuracy"] = model.evaluate(x, y, batch_size=500, verbose=0,
                                                       return_dict=True)["accuracy"]
        executed = settings.artifacts / "executed" / "03_model_building_and_training.ipynb"
        found = re.search(r"trained \d+ epochs in ([0-9.]+) min", executed.read_text())
        result["quick_training_s"] = float(found.group(1)) * 60 if found else None
    return result


TASKS = {"load": _task_load, "convert": _task_convert, "train": _task_train,
         "recipe": _task_recipe, "predict": _task_predict, "series": _task_series}


def child_main(a):
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    result = TASKS[a.child](a)
    result["peak_rss_mb"] = max(peak_rss_mb(), result.pop("children_peak_rss_mb", 0.0))
    print("BENCH-RESULT " + json.dumps(result))


# ----------------------------------------------------------------------------- parent
def run_child(task, repeats, env=None, **options):
    cmd = [sys.executable, __file__, "--child", task, "--repeats", str(repeats)]
    for key, value in options.items():
        cmd += [f"--{key}", str(value)]
    proc = subprocess.run(cmd, env=dict(os.environ, **(env or {})), capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("BENCH-RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"bench task {task} {options} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("BENCH-RESULT "):])


def summarise(result):
    s = result["seconds"]
    return {"median_s": statistics.median(s), "min_s": min(s), "max_s": max(s), "runs": len(s),
            "peak_rss_mb": round(result["peak_rss_mb"], 1),
            **{k: v for k, v in result.items() if k not in ("seconds", "peak_rss_mb")}}


def machine():
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}


def parent_main(a):
    sys.path.insert(0, str(REPO))
    from helpers.settings import get_settings

    reduced = a.reduced
    repeats = 1 if reduced else 3
    steps = 3 if reduced else 60
    rows = {}

    def record(name, result, note=""):
        rows[name] = dict(summarise(result), note=note)
        r = rows[name]
        print(f"  {name:42} median {r['median_s']:8.2f} s  (min {r['min_s']:.2f}, max {r['max_s']:.2f}, "
              f"{r['runs']} runs)  peak RSS {r['peak_rss_mb']:7.0f} MiB  {note}", flush=True)

    info = machine()
    print(f"Benchmark on {info['cpu']}, {info['cores']} cores{' (reduced)' if reduced else ''}", flush=True)
    record("load the local copy", run_child("load", repeats))
    record("convert train + test to float32 / one-hot", run_child("convert", repeats))
    candidates = ["plain", "xla", "xla + 8 steps per call"] if reduced else list(CANDIDATES)
    for name in candidates:
        result = run_child("train", repeats, env=CANDIDATES[name]["env"], steps=steps, candidate=name)
        ips = 32 / statistics.median(result["seconds_per_step"])
        record(f"train one epoch, batch 32: {name}", result,
               note=f"{ips:,.0f} images/s, extrapolated from {steps} steps")
        rows[f"train one epoch, batch 32: {name}"]["images_per_s"] = ips
    base = rows["train one epoch, batch 32: plain"]["median_s"]
    for name in candidates:
        rows[f"train one epoch, batch 32: {name}"]["speedup_vs_plain"] = base / rows[
            f"train one epoch, batch 32: {name}"]["median_s"]
    # notebook 05's final recipe next to the article's model as the series trains it (xla),
    # measured in this same run: only the ratio carries over to another machine
    recipe = run_child("recipe", repeats, steps=max(2, steps // 4))
    name = f"train one epoch, batch {RECIPE_BATCH}: notebook 05's final recipe"
    article = rows["train one epoch, batch 32: xla"]
    ratio = article["median_s"] / statistics.median(recipe["seconds"])
    record(name, recipe, note=(f"{RECIPE_BATCH / statistics.median(recipe['seconds_per_step']):,.0f} images/s; "
                               f"{recipe['macs_per_image'] / 1e6:.1f} M multiply-adds per image against "
                               f"the article model's {article['macs_per_image'] / 1e6:.1f} M; "
                               f"an epoch takes 1/{ratio:.1f} of the article model's (xla)"))
    rows[name]["vs_article_xla"] = ratio
    images = 1_000 if reduced else 10_000
    for batch in ([500] if reduced else [32, 500]):
        record(f"predict {images:,} test images, batch {batch}",
               run_child("predict", repeats, images=images, batch=batch))
    if reduced:
        record("notebook 01 in quick mode", run_child("series", 1, notebooks="01"))
    else:
        result = run_child("series", 1 if a.fast else 2, notebooks="all")
        note = (f"training {result.get('quick_training_s') or 0:.0f} s, "
                f"test accuracy {result.get('quick_test_accuracy', float('nan')):.3f}")
        record("whole series in quick mode (make run QUICK=1)", result, note=note)

    out = {"machine": info, "reduced": reduced, "steps_per_epoch": STEPS_PER_EPOCH, "results": rows}
    path = Path(a.out) if a.out else get_settings().artifacts / "bench.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print("\n| measurement | median s | min s | max s | peak RSS MiB | note |\n|---|---|---|---|---|---|")
    for name, r in rows.items():
        note = r["note"]
        if "speedup_vs_plain" in r:
            note += f"; {r['speedup_vs_plain']:.2f}× plain"
        print(f"| {name} | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['max_s']:.2f} | "
              f"{r['peak_rss_mb']:.0f} | {note} |")
    print(f"\nwritten to {path}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reduced", action="store_true", help="smoke run: 1 repeat, 3 steps, 2 candidates, notebook 01 only")
    ap.add_argument("--fast", action="store_true", help="run the quick series once, not twice")
    ap.add_argument("--out", help="JSON output path (default <artifacts>/bench.json)")
    ap.add_argument("--child", choices=sorted(TASKS), help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=60, help=argparse.SUPPRESS)
    ap.add_argument("--candidate", default="plain", help=argparse.SUPPRESS)
    ap.add_argument("--images", type=int, default=10_000, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=500, help=argparse.SUPPRESS)
    ap.add_argument("--notebooks", default="all", help=argparse.SUPPRESS)
    a = ap.parse_args()
    return child_main(a) if a.child else parent_main(a)


if __name__ == "__main__":
    sys.exit(main())
