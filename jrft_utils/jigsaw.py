"""Jigsaw puzzles: the new task (notebook 01).

Convention: positions and tile indices both count row-major from 0 (top-left) to rows*cols-1.
The answer lists, for each position of the shuffled image, the original index of the tile shown there.
"""

from __future__ import annotations

# Every word the jigsaw prompt, answers and the teacher's reasoning use; the model factory adds these
# to the tokenizer's vocabulary (digits and punctuation are always in it).
VOCABULARY: tuple[str, ...] = (
    "the", "image", "is", "cut", "into", "x", "tiles", "and", "shuffled", "for", "each", "position",
    "give", "original", "index", "of", "its", "tile",
)


def jigsaw_prompt(rows: int, cols: int) -> str:
    """The user prompt of a rows x cols puzzle (the image comes before it in the chat)."""
    return (
        f"the image is cut into {rows} x {cols} tiles and shuffled . "
        "for each position give the original index of its tile ."
    )
