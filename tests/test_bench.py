"""`make bench` cannot rot: its reduced form runs every code path and writes a well-formed table.

No timing is asserted: how fast this machine is is not a property of the code.
"""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_reduced_benchmark_runs_and_reports(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench.py"), "--reduced",
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| measurement | median s |" in proc.stdout
    report = json.loads(out.read_text())
    assert report["reduced"] is True and report["steps_per_epoch"] == 1407
    assert report["machine"]["cores"] >= 1
    rows = report["results"]
    expected = {"load the local copy", "convert train + test to float32 / one-hot",
                "train one epoch, batch 32: plain", "train one epoch, batch 32: xla + 8 steps per call",
                "train one epoch, batch 512: notebook 05's final recipe",
                "predict 1,000 test images, batch 500", "notebook 01 in quick mode"}
    assert expected <= set(rows)
    for name, row in rows.items():
        assert 0 < row["min_s"] <= row["median_s"] <= row["max_s"], name
        assert row["peak_rss_mb"] > 100, name          # each child really loaded TensorFlow/data
    train = rows["train one epoch, batch 32: plain"]
    assert train["speedup_vs_plain"] == 1.0 and train["images_per_s"] > 0
    assert len(train["seconds_per_step"]) == 1
    assert rows["train one epoch, batch 32: xla + 8 steps per call"]["speedup_vs_plain"] > 0
    recipe = rows["train one epoch, batch 512: notebook 05's final recipe"]
    assert recipe["macs_per_image"] == 69_070_368
    assert rows["train one epoch, batch 32: xla"]["macs_per_image"] == 26_710_920
    assert recipe["vs_article_xla"] > 0 and "multiply-adds per image" in recipe["note"]
    series = rows["notebook 01 in quick mode"]
    assert series["notebooks"] == ["01_data_loading.ipynb"]
    assert series["kernel_peak_rss_mb"]["01_data_loading.ipynb"] > 100   # read from the kernel
