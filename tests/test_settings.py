from pathlib import Path

import numpy as np
import pytest

from helpers import get_settings, split_train_val


def test_full_mode_is_the_article(monkeypatch, tmp_path):
    monkeypatch.setenv("CIFAR10_QUICK", "0")
    monkeypatch.setenv("CIFAR10_ARTIFACTS", str(tmp_path))
    s = get_settings()
    assert (s.quick, s.epochs, s.batch_size, s.n_train + s.n_val) == (False, 10, 32, 50_000)
    assert s.model_path == tmp_path / "best_model.keras"
    assert "full mode" in s.describe()


def test_quick_mode_never_shares_a_folder_with_full_mode(monkeypatch, tmp_path):
    monkeypatch.setenv("CIFAR10_ARTIFACTS", str(tmp_path))
    monkeypatch.setenv("CIFAR10_QUICK", "1")
    quick = get_settings()
    monkeypatch.delenv("CIFAR10_QUICK")
    full = get_settings()
    assert quick.quick and not full.quick
    assert quick.model_path != full.model_path and quick.history_path != full.history_path
    assert quick.epochs * quick.n_train <= 25_000   # about a minute of training on 2 cores


def test_default_artifacts_folder_is_in_the_repository(monkeypatch):
    monkeypatch.delenv("CIFAR10_ARTIFACTS", raising=False)
    monkeypatch.delenv("CIFAR10_QUICK", raising=False)
    assert get_settings().artifacts == Path(__file__).resolve().parent.parent / "artifacts"


def test_unclear_quick_flag_is_an_error(monkeypatch):
    monkeypatch.setenv("CIFAR10_QUICK", "fast")
    with pytest.raises(ValueError, match=r"CIFAR10_QUICK='fast' is not understood; use CIFAR10_QUICK=1"):
        get_settings()


def test_validation_is_the_tail_of_the_training_set(monkeypatch):
    monkeypatch.setenv("CIFAR10_QUICK", "0")
    x, y = np.arange(50_000), np.arange(50_000) % 10
    (xt, _), (xv, _) = split_train_val(x, y, get_settings())
    assert len(xt) == 45_000 and len(xv) == 5_000
    assert xv[0] == 45_000 and not set(xt) & set(xv)


def test_class_mode_is_the_article_for_one_epoch_in_its_own_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("CIFAR10_ARTIFACTS", str(tmp_path))
    monkeypatch.setenv("CIFAR10_CLASS", "1")
    monkeypatch.delenv("CIFAR10_QUICK", raising=False)
    lesson = get_settings()
    assert (lesson.mode, lesson.quick, lesson.epochs, lesson.batch_size) == ("class", False, 1, 32)
    assert (lesson.n_train, lesson.n_val) == (40_000, 5_000)
    assert lesson.artifacts == tmp_path / "class"
    assert "class mode (CIFAR10_CLASS=1)" in lesson.describe() and "1 epoch of batch 32" in lesson.describe()
    monkeypatch.delenv("CIFAR10_CLASS")
    full = get_settings()
    monkeypatch.setenv("CIFAR10_QUICK", "1")
    quick = get_settings()
    assert len({lesson.model_path, full.model_path, quick.model_path}) == 3


def test_two_modes_at_once_is_an_error(monkeypatch):
    monkeypatch.setenv("CIFAR10_QUICK", "1")
    monkeypatch.setenv("CIFAR10_CLASS", "1")
    with pytest.raises(ValueError, match="both set; choose one mode"):
        get_settings()


def test_printed_paths_never_show_this_machines_folders(monkeypatch):
    from helpers.settings import REPO_ROOT, short_path
    assert short_path(REPO_ROOT / "artifacts" / "best_model.keras") == "artifacts/best_model.keras"
    assert short_path(REPO_ROOT) == "."
    assert short_path(Path.home() / "data" / "cifar") == "~/data/cifar"
    assert short_path("/srv/shared/cifar-10-batches-py") == ".../shared/cifar-10-batches-py"
    monkeypatch.delenv("CIFAR10_ARTIFACTS", raising=False)
    monkeypatch.delenv("CIFAR10_QUICK", raising=False)
    assert get_settings().describe().endswith("artifacts in artifacts")


def test_a_split_larger_than_the_training_set_is_refused(monkeypatch):
    monkeypatch.setenv("CIFAR10_QUICK", "1")
    with pytest.raises(ValueError, match=r"3000 \+ 2000 images requested, but the training set has 4000"):
        split_train_val(np.zeros(4_000), np.zeros(4_000), get_settings())


@pytest.mark.parametrize("value, quick", [("1", True), ("yes", True), (" ON ", True), ("true", True),
                                          ("", False), ("0", False), ("off", False), ("No", False)])
def test_the_mode_switch_reads_the_usual_spellings(monkeypatch, value, quick):
    monkeypatch.setenv("CIFAR10_QUICK", value)
    monkeypatch.delenv("CIFAR10_CLASS", raising=False)
    assert get_settings().quick is quick
