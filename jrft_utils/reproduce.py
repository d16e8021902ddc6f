"""The papermill runner: execute the numbered notebooks in order for one profile.

    python -m jrft_utils.reproduce --profile cpu                 # everything, the profile's seeds
    python -m jrft_utils.reproduce --profile smoke --only 00 01  # some notebooks
    python -m jrft_utils.reproduce --profile cpu --from 02 --seeds 0 1 -p sft_learning_rate=3e-4
    python -m jrft_utils.reproduce --profile cpu --only 05 --force  # execute it even if unchanged
    python -m jrft_utils.reproduce --profile cpu --rebuild-base      # pretrain the bases, not data/'s
    python -m jrft_utils.reproduce --profile gpu -p processes=8      # each fine-tuning run on 8 GPUs (docs/gpu.md)

Executed copies go to ``runs/<profile>/notebooks/``, and for the reproduction (a profile that writes to the
repository's ``figures/``, run with its own settings) also to ``notebooks/executed/``, outputs kept, to be
committed with the results; with ``--seeds`` or ``-p`` (changed knobs, but for :data:`SAME_RESULTS`) to
``runs/<profile>/variants/runner-<key>/notebooks/``, and each notebook then writes its figures and summary
beside its runs (its first cell prints where), never over the reproduction's. A notebook is a stage too: one whose cells,
parameters and package source are unchanged, and whose upstream notebooks (the lower-numbered ones) were
not executed again since it ran, is reused (its executed copy and figures are kept) unless ``--force``.
Inside the notebooks, each training stage has its own cache, so a notebook that is executed again redoes
only what changed. A run that executes every notebook stores its wall time, each notebook's seconds, the
fine-tuning runs' seconds per stage (:func:`stage_times`) and each notebook's peak memory, its kernel and
workers together (:class:`MemoryWatch`), in the summary (``timing``), and prints them with the run folder's size. The run stops at the first
failing notebook and prints the failing cell's error and the executed copy's path. Bad input (unknown profile, notebook or
parameter) is a one-line error with exit status 2; a failing notebook exits with status 1.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from jrft_utils import profiles, results, stages

NOTEBOOKS_DIR = profiles.REPO_ROOT / "notebooks"
EXECUTED = "executed"  # the reproduction's executed copies: NOTEBOOKS_DIR / EXECUTED


class RunnerError(Exception):
    """Bad input to the runner; printed as one line."""


@dataclass(frozen=True)
class Notebook:
    """A numbered notebook and the names of the parameters its ``parameters`` cell declares."""

    path: Path
    parameters: tuple[str, ...]

    @property
    def number(self) -> str:
        return self.path.name.split("_", 1)[0]


def notebook_parameters(path: Path) -> tuple[str, ...]:
    """Names assigned in the notebook's cell tagged ``parameters``."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse(cell.source)
            return tuple(t.id for node in tree.body if isinstance(node, ast.Assign)
                         for t in node.targets if isinstance(t, ast.Name))
    raise RunnerError(f"{path.name} has no cell tagged 'parameters'")


def discover(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Notebook]:
    """The numbered notebooks (``NN_name.ipynb``), in order."""
    paths = sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
    return [Notebook(p, notebook_parameters(p)) for p in paths]


def select(notebooks: list[Notebook], only: list[str] | None, start: str | None) -> list[Notebook]:
    """Notebooks named by ``only`` (numbers or names), or from ``start`` on; all by default."""

    def find(key: str) -> int:
        for i, nb in enumerate(notebooks):
            if key in (nb.number, nb.path.stem, nb.path.name):
                return i
        known = ", ".join(nb.path.stem for nb in notebooks)
        raise RunnerError(f"unknown notebook {key!r}; known: {known}")

    if only and start:
        raise RunnerError("use either --only or --from, not both")
    if only:
        return [notebooks[i] for i in sorted({find(k) for k in only})]
    if start:
        return notebooks[find(start):]
    return notebooks


def parse_parameter(text: str) -> tuple[str, Any]:
    """``name=value`` with ``value`` a Python literal (a bare word is taken as a string)."""
    name, sep, raw = text.partition("=")
    if not sep or not name.isidentifier():
        raise RunnerError(f"parameter {text!r} is not of the form name=value")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return name, value


def plan(notebooks: list[Notebook], profile: str, seeds: list[int] | None,
         extra: dict[str, Any]) -> list[tuple[Notebook, dict[str, Any]]]:
    """The parameters each notebook gets; an ``extra`` parameter that no selected notebook declares is
    an error."""
    profiles.get_profile(profile)
    for name in extra:
        if not any(name in nb.parameters for nb in notebooks):
            names = ", ".join(nb.path.stem for nb in notebooks)
            raise RunnerError(f"parameter {name!r} is not a parameter of any selected notebook ({names})")
    steps = []
    for nb in notebooks:
        params: dict[str, Any] = {"profile": profile}
        if seeds is not None and "seeds" in nb.parameters:
            params["seeds"] = list(seeds)
        params.update({k: v for k, v in extra.items() if k in nb.parameters})
        unknown = set(params) - set(nb.parameters)
        if unknown:
            raise RunnerError(f"{nb.path.name} does not declare parameter(s) {sorted(unknown)}")
        steps.append((nb, params))
    return steps


def execute(nb: Notebook, params: dict[str, Any], out_dir: Path) -> Path:
    """Run one notebook with papermill; return the executed copy's path."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / nb.path.name
    pm.execute_notebook(str(nb.path), str(executed), parameters=params, cwd=str(nb.path.parent),
                        progress_bar=True, kernel_name="python3")
    return executed


# parameters that change how the notebooks run, not what they compute (profiles.HOW_KNOBS): a run with
# them is the reproduction, not an exercise
SAME_RESULTS = ("rebuild_base", *profiles.HOW_KNOBS["run"])


def published_dir(config: profiles.Config, knobs: dict[str, Any], notebooks_dir: Path = NOTEBOOKS_DIR) -> Path | None:
    """Where the reproduction's executed copies are kept to be committed (``notebooks/executed/``): for a
    profile that writes its figures into the repository, run with its own settings; else None."""
    return notebooks_dir / EXECUTED if config.sections["run"]["figures_dir"] and not knobs else None


def publish(executed: Path, folder: Path) -> Path:
    """Copy the executed notebook ``executed`` into ``folder`` (created if missing), marked ``keep_output``
    so that nbstripout's commit filter, which strips every other notebook, keeps its outputs; return the copy."""
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(executed, as_version=4)
    nb.metadata["keep_output"] = True
    nbformat.write(nb, folder / executed.name)
    return folder / executed.name


def package_fingerprint() -> str:
    """A hash of the package's source: every notebook is executed again when any of it changes."""
    root = profiles.REPO_ROOT / "jrft_utils"
    return stages.fingerprint({str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
                               for f in sorted(root.rglob("*.py"))})


def notebook_inputs(nb: Notebook, params: dict[str, Any], earlier: list[Notebook], out_dir: Path,
                    package: str) -> dict[str, Any]:
    """What an execution of ``nb`` depends on: its cells, its parameters, the package's source, and the
    executions of the ``earlier`` notebooks (the files they wrote are its inputs)."""
    cells = [cell.source for cell in nbformat.read(nb.path, as_version=4).cells]
    upstream = {}
    for other in earlier:
        done = stages.record(out_dir / other.path.stem)
        upstream[other.path.stem] = done["outputs"]["execution"] if done else None
    return {"cells": stages.fingerprint({"cells": cells}), "parameters": params, "package": package,
            "upstream": upstream}


def reusable(nb: Notebook, inputs: dict[str, Any], out_dir: Path, figures: Path) -> bool:
    """Whether ``nb`` ran to the end with ``inputs`` and its executed copy and its figures (in
    ``figures``) are still there."""
    outputs = stages.cached(out_dir / nb.path.stem, inputs)
    return (outputs is not None and (out_dir / nb.path.name).exists()
            and all((figures / name).exists() for name in outputs["figures"]))


def figure_stamps(figures: Path) -> dict[str, int]:
    """Modification times of the files in the folder ``figures``, by name."""
    return {f.name: f.stat().st_mtime_ns for f in figures.iterdir() if f.is_file()}


class MemoryWatch:
    """The peak resident memory (GB) of this process's children and their children (a notebook's kernel
    and its workers), summed at each sample, sampled every ``every`` seconds while in the ``with`` block."""

    def __init__(self, every: float = 0.5):
        self.every, self.peak_gb = every, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:  # it ended between the listing and the reading
                    pass
            self.peak_gb = max(self.peak_gb, total / 2**30)
            self._stop.wait(self.every)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def folder_size(path: Path) -> int:
    """Bytes of all files under ``path``."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def stage_times(run_dir: Path, since: float) -> dict[str, dict[str, float]]:
    """Seconds of the fine-tuning runs finished in ``run_dir`` since ``since`` (a ``time.time()``), summed
    per stage (``finetune/<corpus>``, ``text/<corpus>``; workers run several at once, so these sum to more
    than the wall time): how many ``runs``, their ``total`` and its parts (``trainers.TrainerClock.parts``)."""
    out: dict[str, dict[str, float]] = {}
    for path in sorted(run_dir.glob("*/**/metrics.json")):
        if path.stat().st_mtime < since:
            continue
        metrics = json.loads(path.read_text())
        if "time_s" not in metrics:
            continue
        stage = out.setdefault("/".join(path.relative_to(run_dir).parts[:2]), {"runs": 0, "total": 0.0})
        stage["runs"] += 1
        for part, seconds in ({"total": metrics["train_time_s"]} | metrics["time_s"]).items():
            stage[part] = round(stage.get(part, 0.0) + seconds, 1)
    return out


def stage_record(seconds: dict[str, dict[str, float]]) -> dict[str, float]:
    """:func:`stage_times` in the results contract's shape, ``{stage: seconds}``: each stage's total under its
    name, each part under ``<stage>/<part>``."""
    return {name if part == "total" else f"{name}/{part}": value
            for name, parts in seconds.items() for part, value in parts.items() if part != "runs"}


def stage_table(seconds: dict[str, dict[str, float]]) -> str:
    """The stages of :func:`stage_times` as a plain-text table, one row a stage, the longest first."""
    parts = ["runs", "total", "evaluation", "sampling", "rewards_and_reference", "forward_and_loss", "rest"]
    rows = [["stage", *parts]] + [[name, *(f"{t[p]:g}" if p in t else "-" for p in parts)]
                                  for name, t in sorted(seconds.items(), key=lambda kv: -kv[1]["total"])]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in rows)


def run(profile: str, seeds: list[int] | None = None, only: list[str] | None = None,
        start: str | None = None, extra: dict[str, Any] | None = None, force: bool = False,
        notebooks_dir: Path = NOTEBOOKS_DIR) -> int:
    """Run the selected notebooks in order, reusing unchanged ones unless ``force``; return a process exit
    status (0 ok, 1 a notebook failed)."""
    import papermill as pm

    notebooks = discover(notebooks_dir)
    steps = plan(select(notebooks, only, start), profile, seeds, extra or {})
    config = profiles.resolve(profile)
    knobs = {k: v for k, v in (extra or {}).items() if k not in SAME_RESULTS} | ({"seeds": seeds} if seeds else {})
    # with changed knobs, the executed copies go beside the reproduction's, as the notebooks' figures do
    out_dir = (config.run_dir / "variants" / f"runner-{stages.fingerprint(knobs)[:8]}" if knobs
               else config.run_dir) / "notebooks"
    published = published_dir(config, knobs, notebooks_dir)
    package = package_fingerprint()
    reused = 0
    times: dict[str, float] = {}
    memory: dict[str, float] = {}
    t0, began = time.perf_counter(), time.time()
    for i, (nb, params) in enumerate(steps, 1):
        inputs = notebook_inputs(nb, params, [e for e in notebooks if e.number < nb.number], out_dir, package)
        if not force and reusable(nb, inputs, out_dir, config.figures_dir):
            print(f"[{i}/{len(steps)}] {nb.path.name}  unchanged since its last run: reused "
                  f"({out_dir / nb.path.name}; --force executes it again)", flush=True)
            reused += 1
            if published and not (published / nb.path.name).exists():
                publish(out_dir / nb.path.name, published)
            continue
        print(f"[{i}/{len(steps)}] {nb.path.name}  {params}", flush=True)
        stages.forget(out_dir / nb.path.stem)
        before = figure_stamps(config.figures_dir)
        t1 = time.perf_counter()
        try:
            with MemoryWatch() as watch:
                executed = execute(nb, params, out_dir)
        except pm.PapermillExecutionError as err:
            print(f"FAILED {nb.path.name} after {time.perf_counter() - t1:.0f} s: {err.ename}: {err.evalue}",
                  file=sys.stderr)
            print(f"executed notebook: {out_dir / nb.path.name}", file=sys.stderr)
            return 1
        took = times[nb.path.stem] = time.perf_counter() - t1
        memory[nb.path.stem] = watch.peak_gb
        if published:
            publish(executed, published)
        written = sorted(name for name, stamp in figure_stamps(config.figures_dir).items() if before.get(name) != stamp)
        stages.mark_done(out_dir / nb.path.stem, inputs,
                         {"execution": uuid.uuid4().hex, "figures": written, "time_s": round(took, 1)})
        print(f"    done in {took:.0f} s -> {executed}", flush=True)
    wall = time.perf_counter() - t0
    stage_seconds = stage_times(config.run_dir, began)
    if times:
        print("time per notebook: " + ", ".join(f"{name} {took:.0f} s" for name, took in times.items()), flush=True)
    if stage_seconds:
        print("seconds of the fine-tuning runs, summed per stage:\n" + stage_table(stage_seconds), flush=True)
    if memory:
        print("peak memory per notebook (kernel and workers): "
              + ", ".join(f"{name} {gb:.2f} GB" for name, gb in memory.items()), flush=True)
    peak_gb = max(memory.values(), default=0.0)
    machine = results.machine()
    peak = f"peak memory of a notebook {peak_gb:.2f} GB; " if memory else ""
    print(f"all {len(steps)} notebooks done in {wall:.0f} s ({wall / 60:.1f} min; {reused} reused); {peak}"
          f"run folder {folder_size(config.run_dir) / 1e9:.2f} GB; "
          f"kernels {machine['cpu_capability']}", flush=True)
    if len(steps) == len(notebooks) and not reused and not knobs:  # the wall time of executing every notebook
        results.record_fields(config, wall_time_s=wall, machine=machine,
                              timing={"notebooks": {k: round(v, 1) for k, v in times.items()},
                                      "stages": stage_record(stage_seconds),
                                      "runs_trained": sum(t["runs"] for t in stage_seconds.values()),
                                      "peak_rss_gb": round(peak_gb, 2),
                                      "memory_gb": {k: round(v, 2) for k, v in memory.items()}})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jrft_utils.reproduce", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", help=f"one of {sorted(profiles.PROFILES)}")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds for notebooks with a `seeds` parameter")
    parser.add_argument("--only", nargs="+", metavar="NB", help="run only these notebooks (e.g. 00 01)")
    parser.add_argument("--from", dest="start", metavar="NB", help="run from this notebook on")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                        help="a notebook parameter (repeatable); must be declared by a selected notebook")
    parser.add_argument("--force", action="store_true",
                        help="execute every selected notebook, even one unchanged since its last run")
    parser.add_argument("--rebuild-base", action="store_true",
                        help="pretrain the bases even when data/ ships them (notebooks 00 and 08: rebuild_base=True)")
    args = parser.parse_args(argv)
    try:
        extra = dict(parse_parameter(p) for p in args.parameter) | ({"rebuild_base": True} if args.rebuild_base else {})
        return run(args.profile, args.seeds, args.only, args.start, extra, force=args.force)
    except (RunnerError, profiles.ProfileError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
