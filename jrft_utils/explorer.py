"""An ipywidgets explorer of jigsaw puzzles (notebook 01): browse puzzles, reveal the solution, change
the grid size. Rendering uses PIL only (no matplotlib), so the widget builds and updates without a display.
"""

from __future__ import annotations

import io
from typing import Any, Sequence

import ipywidgets as widgets
from PIL import Image, ImageDraw

from jrft_utils import jigsaw

GRIDS: tuple[tuple[int, int], ...] = ((2, 2), (2, 3), (3, 2), (3, 3), (4, 4))


def _label_tiles(image: Image.Image, rows: int, cols: int, labels: Sequence[Any], scale: int,
                 color: tuple[int, int, int]) -> Image.Image:
    """Upscale ``image`` by ``scale``, draw the grid and write ``labels[k]`` in tile k (row-major)."""
    big = image.convert("RGB").resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(big)
    th, tw = big.height // rows, big.width // cols
    for r in range(rows):
        for c in range(cols):
            x, y = c * tw, r * th
            draw.rectangle((x, y, x + tw - 1, y + th - 1), outline=(255, 255, 255), width=2)
            text = str(labels[r * cols + c])
            draw.rectangle((x + 3, y + 3, x + 7 + 7 * len(text), y + 17), fill=(0, 0, 0))
            draw.text((x + 5, y + 4), text, fill=color)
    return big


def render(puzzle: jigsaw.Puzzle, reveal: bool, scale: int = 3) -> Image.Image:
    """The shuffled puzzle with its positions labelled; with ``reveal``, beside it the solved image with
    each tile's original index."""
    n = puzzle.rows * puzzle.cols
    left = _label_tiles(puzzle.image, puzzle.rows, puzzle.cols, [f"p{p}" for p in range(n)], scale, (255, 255, 0))
    if not reveal:
        return left
    right = _label_tiles(puzzle.original, puzzle.rows, puzzle.cols, list(range(n)), scale, (0, 255, 255))
    out = Image.new("RGB", (left.width + right.width + 12, left.height), (255, 255, 255))
    out.paste(left, (0, 0))
    out.paste(right, (left.width + 12, 0))
    return out


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


class JigsawExplorer(widgets.VBox):
    """The explorer widget. Controls: ``index`` (slider over puzzles), ``reveal`` (toggle), ``grid``
    (dropdown of (rows, cols)). ``state`` tells what is shown; ``puzzle`` is the current puzzle."""

    def __init__(self, n: int = 20, rows: int = 2, cols: int = 2, split: str = "test", seed: int = 0,
                 grids: Sequence[tuple[int, int]] = GRIDS, scale: int = 3, **generator: Any) -> None:
        jigsaw.check_grid(rows, cols, generator.get("image_size", 84))
        self._n, self._split, self._seed, self._scale, self._generator = n, split, seed, scale, generator
        self._cache: dict[tuple[int, int], list[jigsaw.Puzzle]] = {}
        options = list(dict.fromkeys([(rows, cols), *grids]))
        self.index = widgets.IntSlider(value=0, min=0, max=n - 1, description="puzzle")
        self.reveal = widgets.ToggleButton(value=False, description="reveal solution", icon="eye")
        self.grid = widgets.Dropdown(options=[(f"{r} x {c}", (r, c)) for r, c in options], value=(rows, cols),
                                     description="grid")
        self.image = widgets.Image(format="png")
        self.caption = widgets.HTML()
        for control in (self.index, self.reveal, self.grid):
            control.observe(self._update, names="value")
        super().__init__([widgets.HBox([self.index, self.grid, self.reveal]), self.image, self.caption])
        self._update()

    def puzzles(self, rows: int, cols: int) -> list[jigsaw.Puzzle]:
        """The explorer's puzzles for one grid (generated on first use, deterministic by seed)."""
        if (rows, cols) not in self._cache:
            self._cache[(rows, cols)] = jigsaw.generate_puzzles(
                self._n, self._split, rows=rows, cols=cols, seed=self._seed, **self._generator)
        return self._cache[(rows, cols)]

    @property
    def puzzle(self) -> jigsaw.Puzzle:
        rows, cols = self.grid.value
        return self.puzzles(rows, cols)[self.index.value]

    @property
    def state(self) -> dict[str, Any]:
        rows, cols = self.grid.value
        p = self.puzzle
        return {"index": self.index.value, "rows": rows, "cols": cols, "revealed": self.reveal.value,
                "answer": p.answer_text, "source": p.source, "image_bytes": len(self.image.value)}

    def _update(self, *_: Any) -> None:
        rows, cols = self.grid.value
        p = self.puzzle
        self.image.value = _png(render(p, self.reveal.value, self._scale))
        text = f"<b>{rows} x {cols}</b> puzzle {self.index.value} from <i>{p.source}</i>. " \
               f"Prompt: <code>{jigsaw.jigsaw_prompt(rows, cols)}</code>"
        if self.reveal.value:
            text += f"<br>Answer: <code>{p.answer_text}</code> (position p shows original tile answer[p])"
        self.caption.value = text


def jigsaw_explorer(n: int = 20, rows: int = 2, cols: int = 2, split: str = "test", seed: int = 0,
                    **generator: Any) -> JigsawExplorer:
    """An explorer over ``n`` puzzles of ``split``; ``generator`` passes knobs of
    :func:`jrft_utils.jigsaw.generate_puzzles` (image_size, photo_fraction, ...)."""
    return JigsawExplorer(n=n, rows=rows, cols=cols, split=split, seed=seed, **generator)
