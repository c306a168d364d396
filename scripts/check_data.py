"""`make data`: make sure CIFAR-10 can be read, once, before anything else needs it.

Reads the local copy named by CIFAR10_PATH, or downloads CIFAR-10 once into Keras' cache
(~/.keras/datasets). On failure it prints one message, what failed and how to fix it, and
exits with status 1; no traceback.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> int:
    from helpers.data import CIFAR10DataError, describe_source, load_cifar10
    try:
        (x_train, _), (x_test, _) = load_cifar10()
        source = describe_source()
    except CIFAR10DataError as err:
        print(f"CIFAR-10 is not available: {err}", file=sys.stderr)
        return 1
    print(f"CIFAR-10 ready ({source}): {len(x_train):,} training and {len(x_test):,} test images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
