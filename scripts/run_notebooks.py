"""Run the series headless, in order, and stop at the first cell that fails.

    python scripts/run_notebooks.py            # executed copies -> <artifacts>/executed/
    python scripts/run_notebooks.py --inplace  # maintainers: refresh the stored outputs

Quick or full mode, and the artifacts folder, come from the environment
(CIFAR10_QUICK, CIFAR10_ARTIFACTS) as in the notebooks themselves. Output the
notebooks print (data sources, one line per training epoch) is echoed as it comes, and
each notebook's kernel peak memory (RSS, read from /proc on Linux) is printed at its end.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parent.parent
SERIES = "0[1-4]_*.ipynb"          # the article's series; 05 runs on its own (make run-further)
CLEAN_ERRORS = ("CIFAR10DataError", "MissingArtifactError")
sys.path.insert(0, str(REPO))
from helpers.settings import get_settings, short_path  # noqa: E402


class EchoingClient(NotebookClient):
    """A NotebookClient that prints each cell's text output as it arrives and records
    the kernel's peak memory."""

    peak_rss_mb = None

    async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
        result = await super().async_execute_cell(cell, cell_index, *args, **kwargs)
        peak = kernel_peak_rss_mb(self.km)
        if peak is not None:
            self.peak_rss_mb = max(self.peak_rss_mb or 0.0, peak)
        return result

    def output(self, outs, msg, display_id, cell_index):
        if msg["msg_type"] == "stream":
            text = msg["content"].get("text", "")
            print("    " + text.rstrip("\n").replace("\n", "\n    "), flush=True)
        return super().output(outs, msg, display_id, cell_index)


def kernel_peak_rss_mb(km):
    """The kernel process's peak resident memory so far (VmHWM), in MiB; None if unknown."""
    process = getattr(getattr(km, "provisioner", None), "process", None)
    try:
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (AttributeError, OSError, ValueError):
        return None
    return None


def run(paths, inplace: bool, timeout: int) -> int:
    settings = get_settings()
    out_dir = settings.artifacts / "executed"
    print(f"Running {len(paths)} notebook(s) in {settings.describe()}", flush=True)
    started = time.perf_counter()
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        # the kernel named in the notebook: cifar10-cnn, this project's .venv (make install)
        client = EchoingClient(nb, timeout=timeout,
                               resources={"metadata": {"path": str(path.parent)}})
        print(f"\n=== {path.name}", flush=True)
        t0 = time.perf_counter()
        try:
            client.execute()
        except CellExecutionError as err:
            if err.ename in CLEAN_ERRORS:   # the message names the fix; a traceback adds nothing
                print(f"\nFAILED in {path.name}: {err.ename}: {err.evalue}", file=sys.stderr)
            else:
                print(f"\nFAILED in {path.name}:\n{err}", file=sys.stderr)
            return 1
        target = path if inplace else out_dir / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        peak = f", kernel peak RSS {client.peak_rss_mb:,.0f} MiB" if client.peak_rss_mb else ""
        print(f"=== {path.name}: done in {time.perf_counter() - t0:.0f} s{peak} -> {short_path(target)}",
              flush=True)
    print(f"\nAll {len(paths)} notebook(s) ran in {time.perf_counter() - started:.0f} s.")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=Path,
                    help="notebooks to run (default: notebooks 01-04 in order)")
    ap.add_argument("--inplace", action="store_true",
                    help="write the outputs back into the notebooks themselves")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds one cell may take")
    args = ap.parse_args()
    paths = [p.resolve() for p in args.notebooks] or sorted((REPO / "notebooks").glob(SERIES))
    if not paths:
        print("No notebooks found in notebooks/.", file=sys.stderr)
        return 1
    return run(paths, args.inplace, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
