"""The Compare tab's data functions and HTML (review/compare_view.py), without a browser."""
from __future__ import annotations

import pytest

from attack.compare import compare_models
from review import compare_view as cv
from review.checks import ViewError
from store import Store

from .test_compare import two_model_store


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    store_dir, specs, fps, ids = two_model_store(tmp_path_factory.mktemp("cview"))
    with Store.open(store_dir) as s:
        first = compare_models(s, specs["a"], specs["b"]).run_id
        second = compare_models(s, specs["b"], specs["a"]).run_id
    return store_dir, specs, ids, first, second


def test_choices_newest_first_and_rows_by_outcome(compared):
    store_dir, specs, ids, first, second = compared
    with Store.open(store_dir) as s:
        choices = cv.compare_choices(s)
        assert [run for _, run in choices] == [second, first]
        assert choices[1][0].startswith(f"run {first}: {specs['a']} vs {specs['b']}")
        every = cv.compare_view(s, first)
        removed = cv.compare_view(s, first, "removed")
        html = cv.compare_html(s, every)
        empty = cv.compare_html(s, cv.CompareView(every.result, "new", ()))
        with pytest.raises(ViewError, match="expected an outcome among all, removed"):
            cv.compare_view(s, first, "gone")
    assert len(every.rows) == 4 and [r.caption_id for r in removed.rows] == [ids[0]]
    assert html.count('class="vb-cmp-row"') == 4 and html.count("<img") == 12
    assert 'data-outcome="persisting"' in html and "removed **1**" in cv.summary(every)
    assert "No caption with outcome new" in empty


def test_an_opened_row_shows_both_strips_and_the_match(compared):
    store_dir, specs, ids, first, _ = compared
    with Store.open(store_dir) as s:
        result = cv.load_compare(s, first)
        html = cv.strips_html(s, result, ids[1])
        missing = cv.strips_html(s, result, ids[4])         # under A only: not in the comparison
    assert html.count('class="vb-cmp-strip"') == 3 and html.count("<img") == 3
    assert 'data-side="A"' in html and 'data-side="B"' in html and "auto MV" in html
    assert f"Caption {ids[4]} is not in comparison run {first}" in missing


def test_a_caption_with_markup_is_shown_as_text(compared):
    store_dir, specs, ids, first, _ = compared
    with Store.open(store_dir) as s:
        view = cv.compare_view(s, first)
        row = view.rows[0]
        hostile = type(row)(row.caption_id, "<img src=x onerror=alert(1)>", row.outcome, row.a, row.b)
        html = cv.compare_html(s, cv.CompareView(view.result, "all", (hostile,)))
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img src=x" not in html
