"""The package's modules import one another without a cycle, and each imports on its own.

A cycle hidden in a function-level import still ties two concepts together (and breaks as soon as either
import moves to the top), so the graph counts imports at module level and inside functions alike.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path


import jrft_utils

PACKAGE = "jrft_utils"
PACKAGE_DIR = Path(jrft_utils.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE_DIR.glob("*.py") if p.stem != "__init__")


def imported_modules(source: str, modules: set[str]) -> set[str]:
    """The package modules that ``source`` imports anywhere (module level or inside functions):
    ``from jrft_utils import x``, ``from jrft_utils.x import y``, ``import jrft_utils.x`` and relative
    ``from . import x`` / ``from .x import y``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith(f"{PACKAGE}.")}
        elif isinstance(node, ast.ImportFrom):
            absolute = node.level == 0 and (node.module or "").split(".")[0] == PACKAGE
            if not (absolute or node.level == 1):
                continue
            inner = (node.module or "").split(".")[1 if absolute else 0:]
            found |= {inner[0]} if inner and inner[0] else {a.name for a in node.names}
    return found & modules


def import_graph() -> dict[str, set[str]]:
    """``{module: the package modules it imports}`` for every module of the package."""
    names = set(MODULES)
    return {m: imported_modules((PACKAGE_DIR / f"{m}.py").read_text(), names) - {m} for m in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) through each strongly connected group of two or more modules
    (Tarjan's algorithm, then a shortest way back to the group's first module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    found = []
    for group in groups:
        start, members = group[0], set(group)
        paths = {w: [start, w] for w in sorted(graph[start]) if w in members}
        frontier = list(paths)
        while start not in paths:  # breadth first inside the group, back to start
            nxt = []
            for v in frontier:
                for w in sorted(graph[v]):
                    if w in members and w not in paths:
                        paths[w] = paths[v] + [w]
                        nxt.append(w)
            frontier = nxt
        found.append(paths[start])
    return sorted(found)


def test_the_graph_reader_sees_every_form_of_import():
    source = """
from jrft_utils import a, b as bee
import jrft_utils.c
import jrft_utils.d as dee
from jrft_utils.e import thing
from . import f
from .g import other
import os, numpy
from os import path


def inner():
    from jrft_utils import h
"""
    assert imported_modules(source, set("abcdefghz")) == set("abcdefgh")


def test_cycles_are_found_and_named():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set(), "c": {"d"}, "d": {"c"}}) == [["c", "d", "c"]]
    assert cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert set(graph) == set(MODULES) and "template" in graph
    found = cycles(graph)
    assert not found, "import cycles in jrft_utils (module level or inside functions): " + \
        "; ".join(" -> ".join(c) for c in found)


def test_every_module_imports_first_in_a_fresh_interpreter():
    """A cycle of top-level imports fails only for some import orders. One fresh interpreter imports each
    module first, with no package module loaded before it (third-party libraries stay loaded, which does
    not change the package's import order and spares a cold start of torch per module)."""
    script = (
        "import importlib, sys\n"
        "failed = {}\n"
        f"for name in {MODULES!r}:\n"
        f"    for loaded in [m for m in sys.modules if m == {PACKAGE!r} or m.startswith({PACKAGE + '.'!r})]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        f"        importlib.import_module({PACKAGE + '.'!r} + name)\n"
        "    except Exception as err:\n"
        "        failed[name] = repr(err)\n"
        "print(failed)\n"
    )
    root = PACKAGE_DIR.parent
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "{}", f"modules that do not import first: {done.stdout[-3000:]}"
