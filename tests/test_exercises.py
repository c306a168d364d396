"""The exercises as a teacher hands them out: every exercise states its kind, difficulty, budget
and time; every solution notebook answers every exercise of its chapter under a heading that
quotes it; the back links land on the exercise list; and the self-checks say "correct" to the
right answer and give their hint for a wrong one. The right answers are recomputed here
independently: from the pixels in float64, and from the layers Keras builds.
"""
import re
from pathlib import Path

import keras
import nbformat
import numpy as np
import pytest

from helpers import check_exercise
from helpers.exercises import EXERCISES

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CHAPTERS = {
    "01": "01_data_loading", "02": "02_data_format_conversion",
    "03": "03_model_building_and_training", "04": "04_model_validation", "05": "05_going_further",
}
DIFFICULTY = re.compile(r"\b(easy|medium|harder)\b")
TIME = re.compile(r"\b(seconds?|minutes?)\b")
BUDGET = re.compile(r"\b(no training|trains?|trainings?|epochs?|images?|predictions|labels|one image)\b")


def _cells(path):
    return nbformat.read(path, as_version=4).cells


def exercise_section(chapter):
    """The intro and the numbered items of the chapter's exercise list (its markdown)."""
    cells = [c for c in _cells(NOTEBOOKS / f"{CHAPTERS[chapter]}.ipynb") if c.cell_type == "markdown"]
    (cell,) = [c for c in cells if "### Exercises" in c.source]
    text = cell.source.split("### Exercises", 1)[1]
    text = re.split(r"\n(?:Worked solutions|\[Worked solutions)", text)[0]
    parts = re.split(r"\n(?=\d+\. )", text.strip())
    intro = parts[0] if not re.match(r"\d+\. ", parts[0]) else ""
    items = {int(p.split(".", 1)[0]): " ".join(p.split()) for p in parts if re.match(r"\d+\. ", p)}
    return " ".join(intro.split()), items


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_exercise_states_its_kind_difficulty_budget_and_time(chapter):
    intro, items = exercise_section(chapter)
    assert list(items) == list(range(1, len(items) + 1)) and len(items) >= 3, items
    for number, item in items.items():
        where = f"exercise {chapter}.{number}"
        assert re.match(rf"{number}\. \*\*[^*]+\*\* \(", item), f"{where} names no kind in bold: {item[:80]}"
        parenthesis = item.split("** (", 1)[1].split(")", 1)[0]
        assert DIFFICULTY.search(parenthesis), f"{where} states no difficulty: ({parenthesis})"
        assert BUDGET.search(parenthesis) or BUDGET.search(item), f"{where} states no budget"
        assert TIME.search(parenthesis) or TIME.search(intro), f"{where} states no time, nor does the intro"
    kinds = {item.split("**")[1] for item in items.values()}
    assert len(kinds) >= 2, f"chapter {chapter} has one kind of exercise only: {kinds}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_exercise_has_a_solution_section_that_quotes_it(chapter):
    _, items = exercise_section(chapter)
    path = NOTEBOOKS / "solutions" / f"{CHAPTERS[chapter]}_solutions.ipynb"
    markdown = "\n".join(c.source for c in _cells(path) if c.cell_type == "markdown")
    for number in items:
        heading = re.search(rf"^### {number}\. .*\n\*[^*\s][^*]*\*", markdown, flags=re.M)
        assert heading, f"solution {chapter}.{number}: no '### {number}. ...' heading followed by the exercise in italics"
    assert not re.search(rf"^### {len(items) + 1}\. ", markdown, flags=re.M), "a solution for an exercise that does not exist"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_the_back_links_land_on_the_exercise_list(chapter):
    path = NOTEBOOKS / "solutions" / f"{CHAPTERS[chapter]}_solutions.ipynb"
    cells = _cells(path)
    for cell in (cells[0], cells[-1]):
        assert f"](../{CHAPTERS[chapter]}.ipynb#Exercises)" in cell.source, cell.source
    headings = [c.source for c in _cells(NOTEBOOKS / f"{CHAPTERS[chapter]}.ipynb")
                if c.cell_type == "markdown" and re.search(r"^### Exercises$", c.source, flags=re.M)]
    assert len(headings) == 1       # JupyterLab's anchor for "### Exercises" is #Exercises


@pytest.mark.parametrize("chapter", ["01", "02", "03", "04", "05"])
def test_the_self_check_cell_checks_every_numbered_exercise_with_a_self_check(chapter):
    cells = _cells(NOTEBOOKS / f"{CHAPTERS[chapter]}.ipynb")
    (cell,) = [c for c in cells if c.cell_type == "code" and "check_exercise" in c.source]
    called = re.findall(r'check_exercise\("(\d\d\.\d)"', cell.source)
    assert called == sorted(e for e in EXERCISES if e.startswith(chapter))
    stored = "".join(o.get("text", "") for o in cell.outputs)
    assert stored.count("not answered yet") == sum(len(EXERCISES[e]) for e in called)   # the stored run: all None


# --------------------------------------------------------------- the right answers, independently
def _right_answers(real_data):
    (x_train, _), (x_test, _) = real_data
    means = np.array([x_train[..., c].astype("float64").mean() for c in range(3)])
    scaled = [x_train[..., c].astype("float64") / 255 for c in range(3)]
    mu = np.array([s.mean() for s in scaled])
    sd = np.array([s.std() for s in scaled])
    pooled = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(32, 3, padding="same"),
                               keras.layers.MaxPooling2D(), keras.layers.Conv2D(32, 3, padding="same"),
                               keras.layers.MaxPooling2D(), keras.layers.Flatten(), keras.layers.Dense(500)])
    from helpers.further import ablation_configs, build_network, count_macs
    row_b = build_network(ablation_configs()["B"])
    full_conv = 16 * 16 * 64 * (3 * 3 * 32)
    separable = 16 * 16 * 32 * (3 * 3 + 64)
    return {
        "01.2": dict(means=tuple(means), dominant=["red", "green", "blue"][int(np.argmax(means))]),
        "01.3": dict(upside_down_index=0, left_right_index=1),
        "02.1": dict(train_max=int(x_train.max()), test_max=int(x_test.max())),
        "02.2": dict(factor=np.zeros((7, 10), "float32").nbytes // np.zeros(7, "uint8").nbytes),
        "02.3": dict(low=tuple(-mu / sd), high=tuple((1 - mu) / sd)),
        "03.2": dict(dense_params=pooled.layers[-1].count_params()),
        "05.1": dict(macs=count_macs(row_b), params=row_b.count_params()),
        "05.2": dict(macs=15 * 15 * 192 * 9 * 48),
        "05.4": dict(separable_macs=separable, times_cheaper=full_conv / separable),
    }


def _confidence_answers(real_data):
    """Notebook 04's exercise 1, for a model trained briefly here and saved where notebook 03 saves
    its model in the current mode (the self-check reads it from there)."""
    from helpers import build_article_model, convert_data_format, get_settings, save_model_atomically
    (x_train, y_train), (x_test, y_test) = real_data
    model = build_article_model(seed=0)
    model.fit(*convert_data_format(x_train[:1000], y_train[:1000]), epochs=1, batch_size=32, verbose=0)
    save_model_atomically(model, get_settings().model_path)
    probs = model.predict(x_test.astype("float32") / 255, batch_size=500, verbose=0)
    top, hit = probs.max(axis=1), probs.argmax(axis=1) == y_test.ravel()
    low = top <= np.sort(top)[len(top) // 10 - 1]          # the least confident tenth
    assert low.sum() == len(top) // 10                      # no ties at the cut
    return dict(low_tenth=hit[low].mean(), other_nine_tenths=hit[~low].mean())


@pytest.fixture(scope="module")
def right_answers(real_data, tmp_path_factory):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CIFAR10_ARTIFACTS", str(tmp_path_factory.mktemp("exercise-04")))
        yield _right_answers(real_data) | {"04.1": _confidence_answers(real_data)}


def test_every_self_check_is_tested_here(right_answers):
    assert set(right_answers) == set(EXERCISES)


@pytest.mark.parametrize("exercise", sorted(EXERCISES))
def test_the_right_answer_is_correct(exercise, right_answers, capsys):
    assert check_exercise(exercise, **right_answers[exercise]) is None    # a cell shows only the lines
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{exercise} {name}: correct." for name in EXERCISES[exercise]]


def _wrong(value):
    if isinstance(value, str):
        return "green" if value != "green" else "red"
    if isinstance(value, tuple):
        return tuple(v + 0.5 for v in value)
    return value + 1


@pytest.mark.parametrize("exercise", sorted(EXERCISES))
def test_a_wrong_answer_gets_its_hint(exercise, right_answers, capsys):
    for name, answer in EXERCISES[exercise].items():
        given = dict(right_answers[exercise], **{name: _wrong(right_answers[exercise][name])})
        check_exercise(exercise, **given)
        out = capsys.readouterr().out
        assert f"{exercise} {name}: not yet. Hint: {answer.hint}." in out
        assert all(f"{exercise} {other}: correct." in out for other in EXERCISES[exercise] if other != name)


def test_answers_of_the_wrong_shape_or_kind_are_not_correct(right_answers, capsys):
    means = right_answers["01.2"]["means"]
    check_exercise("01.2", means=means[:2], dominant="red")
    assert capsys.readouterr().out.startswith("01.2 means: not yet. Hint:")
    check_exercise("02.3", low="about -2", high=right_answers["02.3"]["high"])
    assert capsys.readouterr().out.startswith("02.3 low: not yet. Hint:")
    check_exercise("01.2", means=means, dominant=0)
    assert capsys.readouterr().out.endswith("01.2 dominant: not yet. Hint: the channel with the largest mean: 'red', 'green' or 'blue'.\n")
    check_exercise("01.2", means=means, dominant=" Red ")
    assert capsys.readouterr().out == "01.2 means: correct.\n01.2 dominant: correct.\n"


def test_an_unanswered_exercise_says_so(capsys):
    check_exercise("02.2", factor=None)
    assert capsys.readouterr().out == "02.2 factor: not answered yet (replace None with your answer).\n"


def test_a_wrong_exercise_number_or_answer_name_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"No self-check for exercise '2\.2'.*02\.2"):
        check_exercise("2.2", factor=40)
    with pytest.raises(ValueError, match=r"unknown: bytes; missing: factor\. Call check_exercise\('02\.2', factor=\.\.\.\)"):
        check_exercise("02.2", bytes=40)
    with pytest.raises(ValueError, match=r"missing: test_max\."):
        check_exercise("02.1", train_max=255)
