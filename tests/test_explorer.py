"""The ipywidgets explorer builds without a display and follows its controls."""

from __future__ import annotations

import ipywidgets as widgets
import pytest

from jrft_utils import explorer, jigsaw


def test_explorer_builds_and_follows_its_controls():
    w = explorer.jigsaw_explorer(n=4, rows=2, cols=2, photo_fraction=0.5)
    assert isinstance(w, widgets.Widget)
    s0 = w.state
    assert s0["index"] == 0 and (s0["rows"], s0["cols"]) == (2, 2) and not s0["revealed"]
    assert s0["image_bytes"] > 0 and "Answer" not in w.caption.value
    hidden_png = w.image.value

    w.reveal.value = True
    assert w.state["revealed"] and w.image.value != hidden_png and s0["answer"] in w.caption.value

    w.index.value = 3
    assert w.state["index"] == 3 and w.state["answer"] == w.puzzles(2, 2)[3].answer_text

    w.grid.value = (3, 3)
    s = w.state
    assert (s["rows"], s["cols"]) == (3, 3) and len(s["answer"].split()) == 9
    assert "3 x 3" in w.caption.value


def test_explorer_is_deterministic_and_refuses_bad_grids():
    a = explorer.jigsaw_explorer(n=3, seed=1)
    b = explorer.jigsaw_explorer(n=3, seed=1)
    assert a.state["answer"] == b.state["answer"] and a.image.value == b.image.value
    with pytest.raises(ValueError, match="single tile"):
        explorer.jigsaw_explorer(rows=1, cols=1)


def test_render_sizes():
    p = jigsaw.generate_puzzles(1, "test")[0]
    assert explorer.render(p, False, scale=2).size == (168, 168)
    assert explorer.render(p, True, scale=2).size == (168 * 2 + 12, 168)
