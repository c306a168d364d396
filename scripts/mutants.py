"""Mutation check: would the tests notice a wrong series?

    python scripts/mutants.py            # every mutant (make mutants); a few minutes on 2 cores
    python scripts/mutants.py 3 7        # only mutants 3 and 7
    python scripts/mutants.py --list     # the list, without running anything

Each mutant is one deliberate bug in helpers/: a line changed the way a hurried edit could
change it. For each, the repository is copied to a scratch folder, the bug is applied there
(the working tree is never touched), and only the fast tests that guard that code run
against the copy. A mutant is *caught* when at least one of them fails. The script prints a
table (mutant, verdict, the tests that caught it) and exits non-zero if any mutant survives
or if the unmutated copy does not pass the same tests.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    what: str
    file: str
    old: str
    new: str
    tests: tuple


MODEL, CONTRACT, DATA, ARTIFACTS = "tests/test_model.py", "tests/test_contract.py", "tests/test_data.py", "tests/test_artifacts.py"
SETTINGS, FURTHER, PROGRESS, CONVERSION = "tests/test_settings.py", "tests/test_further.py", "tests/test_progress.py", "tests/test_conversion.py"

MUTANTS = [
    # the five a review found surviving
    Mutant("MaxNorm(3) removed from dense_500", "helpers/model.py",
           'keras.layers.Dense(500, activation="relu", kernel_constraint=max_norm,',
           'keras.layers.Dense(500, activation="relu",', (MODEL, CONTRACT)),
    Mutant("dense_500 activation ReLU -> tanh", "helpers/model.py",
           'keras.layers.Dense(500, activation="relu"', 'keras.layers.Dense(500, activation="tanh"',
           (MODEL, CONTRACT)),
    Mutant("validation labels no longer those of the validation images", "helpers/settings.py",
           "(x[-settings.n_val:], y[-settings.n_val:])", "(x[-settings.n_val:], y[:settings.n_val])",
           (SETTINGS, CONTRACT)),
    Mutant("unpickler allows any numpy.* global", "helpers/data.py",
           "if (module, name) not in _ALLOWED_GLOBALS:",
           'if (module, name) not in _ALLOWED_GLOBALS and not module.startswith("numpy"):',
           (DATA, CONTRACT)),
    Mutant("load_best_model accepts the wrong number of outputs", "helpers/artifacts.py",
           "tuple(model.input_shape) != expected_in or tuple(model.output_shape) != expected_out",
           "tuple(model.input_shape) != expected_in", (ARTIFACTS, CONTRACT)),
    # more of the same kind
    Mutant("MaxNorm(3) -> MaxNorm(4)", "helpers/model.py", "MaxNorm(3)  #", "MaxNorm(4)  #", (MODEL, CONTRACT)),
    Mutant("MaxNorm on whole filters (axis=[0, 1, 2]) instead of the article's default axis",
           "helpers/model.py", "MaxNorm(3)  #", "MaxNorm(3, axis=[0, 1, 2])  #", (MODEL, CONTRACT)),
    Mutant("conv_2 padding 'same' -> 'valid'", "helpers/model.py",
           'keras.layers.Conv2D(32, (3, 3), padding="same", activation="relu",\n                                kernel_constraint=max_norm, name="conv_2")',
           'keras.layers.Conv2D(32, (3, 3), padding="valid", activation="relu",\n                                kernel_constraint=max_norm, name="conv_2")',
           (MODEL, CONTRACT)),
    Mutant("output activation softmax -> sigmoid", "helpers/model.py",
           'activation="softmax", name="softmax_out"', 'activation="sigmoid", name="softmax_out"',
           (MODEL, CONTRACT)),
    Mutant("optimizer Adam -> RMSprop", "helpers/model.py", 'optimizer="adam"', 'optimizer="rmsprop"',
           (MODEL, CONTRACT)),
    Mutant("loss categorical cross-entropy -> mean squared error", "helpers/model.py",
           'loss="categorical_crossentropy"', 'loss="mean_squared_error"', (MODEL, CONTRACT)),
    Mutant("no accuracy metric", "helpers/model.py", 'metrics=["accuracy"]', "metrics=[]", (MODEL, CONTRACT)),
    Mutant("pixels scaled by the set's own maximum (the article's bug)", "helpers/data.py",
           "x /= 255.0", "x /= x.max()", (CONVERSION,)),
    Mutant("rows and columns swapped when unpacking a batch", "helpers/data.py",
           ".transpose(0, 2, 3, 1)", ".transpose(0, 3, 2, 1)", (DATA, CONTRACT)),
    Mutant("labels outside 0-9 accepted", "helpers/data.py",
           "bad = labels[(labels < 0) | (labels >= NUM_CLASSES)]", "bad = labels[labels < 0]", (DATA,)),
    Mutant("checkpoint written in place, not through a temporary file", "helpers/artifacts.py",
           "        model.save(tmp)\n", "        model.save(path)\n", (ARTIFACTS,)),
    Mutant("checkpoint keeps the worst epoch", "helpers/artifacts.py", "if value < self.best:",
           "if value > self.best or self.best == math.inf:", (ARTIFACTS, MODEL)),
    Mutant("quick mode writes into the full-mode folder", "helpers/settings.py",
           'artifacts=base / "quick")', "artifacts=base)", (SETTINGS, ARTIFACTS)),
    Mutant("class mode trains for 10 epochs, not a lesson's one", "helpers/settings.py",
           'epochs=1, batch_size=32, seed=SEED, artifacts=base / "class")',
           'epochs=10, batch_size=32, seed=SEED, artifacts=base / "class")', (SETTINGS, CONTRACT)),
    Mutant("one shift for the whole batch", "helpers/further.py",
           "dx = rng.integers(0, 2 * pad + 1, n)", "dx = np.full(n, rng.integers(0, 2 * pad + 1))",
           (FURTHER,)),
    Mutant("augmentation flips every image", "helpers/further.py", "rng.random(n) < (0.5 if flip else 0.0)",
           "rng.random(n) < (2 if flip else 0.0)", (FURTHER,)),
    Mutant("multiply-adds of a convolution ignore its input channels", "helpers/further.py",
           "return int(rows * cols * k_rows * k_cols * in_channels * filters)",
           "return int(rows * cols * k_rows * k_cols * filters)", (FURTHER,)),
    Mutant("final model without its first batch normalisation", "helpers/further.py",
           'stack += conv(stem, "stem") + norm_act("stem")', 'stack += conv(stem, "stem") + [layers.ReLU()]',
           (FURTHER, CONTRACT)),
    Mutant("one-cycle SGD without Nesterov momentum", "helpers/further.py", "nesterov=True", "nesterov=False",
           (FURTHER,)),
    Mutant("live progress opens a new output for every update", "helpers/progress.py",
           "        if not self._opened:", "        if True:", (PROGRESS,)),
    Mutant("TensorFlow's start-up notes no longer silenced", "helpers/__init__.py",
           "    _os.dup2(devnull, 2)\n", "    pass\n",
           ("tests/test_failures.py::test_the_series_starts_quietly_on_every_installed_backend",)),
]


def scratch_copy(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for name in files:
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def run_tests(copy: Path, tests) -> tuple[bool, list[str], float]:
    env = dict(os.environ, PYTHONPATH=str(copy), CIFAR10_QUICK="1", PYTHONDONTWRITEBYTECODE="1")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider",
                           *tests], cwd=copy, env=env, capture_output=True, text=True)
    failed = sorted(set(re.findall(r"^FAILED (\S+?)(?: - |$)", proc.stdout, re.M)))
    if proc.returncode not in (0, 1):          # 1: tests failed; anything else: pytest itself broke
        failed = failed or [f"pytest exit {proc.returncode}: {proc.stdout.strip().splitlines()[-1:]}"]
    return proc.returncode == 0, failed, time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("only", nargs="*", type=int, help="mutant numbers to run (default: all)")
    ap.add_argument("--list", action="store_true", help="print the mutants and stop")
    args = ap.parse_args()
    chosen = [(i, m) for i, m in enumerate(MUTANTS, start=1) if not args.only or i in args.only]
    if args.list:
        for i, m in chosen:
            print(f"{i:2}. {m.what}  ({m.file}; tests: {', '.join(m.tests)})")
        return 0
    with tempfile.TemporaryDirectory(prefix="cifar10-mutants-") as tmp:
        base = Path(tmp) / "clean"
        scratch_copy(base)
        for i, m in chosen:                      # every mutation must apply exactly once
            count = (base / m.file).read_text().count(m.old)
            if count != 1:
                print(f"mutant {i} ({m.what}): its text occurs {count} times in {m.file}; update the list")
                return 2
        tests = sorted({t for _, m in chosen for t in m.tests})
        ok, failed, seconds = run_tests(base, tests)
        print(f"unmutated copy: {'all guarding tests pass' if ok else 'FAILS: ' + ', '.join(failed)} ({seconds:.0f} s)")
        if not ok:
            return 2
        print("\n| # | mutant | verdict | caught by | s |\n|---|---|---|---|---|", flush=True)
        survived = 0
        for i, m in chosen:
            copy = Path(tmp) / f"mutant-{i}"
            shutil.copytree(base, copy)
            target = copy / m.file
            target.write_text(target.read_text().replace(m.old, m.new))
            ok, failed, seconds = run_tests(copy, m.tests)
            survived += ok
            caught = ", ".join(f.split("::")[-1] if "::" in f else f for f in failed[:3])
            more = f" (+{len(failed) - 3} more)" if len(failed) > 3 else ""
            print(f"| {i} | {m.what} | {'SURVIVED' if ok else 'caught'} | {caught}{more} | {seconds:.0f} |",
                  flush=True)
            shutil.rmtree(copy, ignore_errors=True)
    print(f"\n{len(chosen) - survived} of {len(chosen)} mutants caught.")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
