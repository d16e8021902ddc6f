"""Per-sample gradients of log pi(x): a naive loop (one forward/backward per sample) against the batched
``torch.func`` version (``vmap(grad(functional_call))``) of ``jrft_utils.dynamics``, on the cpu-profile
model (freshly initialised; speed does not depend on the weights).

Run: ``.venv/bin/python benchmarks/bench_dynamics.py [--n 32] [--repeats 3] [--chunk-size 16] [--threads 1]
[--device cpu]``.
Prints the median wall time of each over ``--repeats`` runs (after one warm-up each), the speed-up
measured in this run, and the largest difference between the two results.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jrft_utils import dynamics, jigsaw, modeling, profiles, teacher, world  # noqa: E402


def samples(config: profiles.Config, n: int) -> list[dict]:
    """``n`` samples: half prior-knowledge probes (all capabilities), half teacher-style jigsaw samples."""
    sets = world.build_test_sets(config["world"]["test_per_capability"], config["model"]["image_size"])
    probes = [s for group in zip(*sets.values()) for s in group][: n - n // 2]
    ds = jigsaw.build_dataset(config["jigsaw"], "train", size=max(1, n // 2))
    train = dynamics.jigsaw_samples(ds, teacher.teacher_completions(ds, use_truth=True))[: n // 2]
    return probes + train


def timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    fn()  # warm-up
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        if out.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--n", type=int, default=32, help="samples")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="e.g. cuda (the timings then include synchronisation)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    config = profiles.resolve(args.profile)
    processor = modeling.build_processor(config["model"])
    net = modeling.build_model(config["model"], 0, processor).eval().to(args.device)
    data = samples(config, args.n)
    n_params = modeling.count_parameters(net)
    print(f"profile {args.profile}: {n_params:,} parameters, {len(data)} samples "
          f"({sum(int(x) for x in dynamics.make_batch(processor, data).n_tokens)} completion tokens), "
          f"{args.threads} thread(s), device {args.device}, median of {args.repeats}")
    t_loop, g_loop = timed(lambda: dynamics.per_sample_grads_loop(net, processor, data), args.repeats)
    t_vmap, g_vmap = timed(lambda: dynamics.per_sample_grads(net, processor, data, chunk_size=args.chunk_size),
                           args.repeats)
    print(f"naive per-sample loop      : {t_loop:.3f} s ({1e3 * t_loop / len(data):.1f} ms/sample)")
    print(f"torch.func vmap(grad) (chunk {args.chunk_size}): {t_vmap:.3f} s ({1e3 * t_vmap / len(data):.1f} ms/sample)")
    print(f"speed-up: {t_loop / t_vmap:.2f}x")
    print(f"max |difference| {float((g_loop - g_vmap).abs().max()):.2e} (max |grad| {float(g_loop.abs().max()):.2e})")


if __name__ == "__main__":
    main()
