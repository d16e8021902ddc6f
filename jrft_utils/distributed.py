"""One fine-tuning run across several processes with ``accelerate``: data parallel (DDP), or DeepSpeed ZeRO-2
for models whose optimiser state does not fit one device (``docs/gpu.md``).

The profile's ``run.processes`` says how many processes train one run and ``run.accelerate_config``
which accelerate config they use (files in ``configs/accelerate/``). With more than one,
:func:`jrft_utils.trainers.train` does not train in the calling process (a notebook's kernel, or a worker of
the runner): it pickles itself as a job, and :func:`launch` starts ``accelerate launch`` on
``python -m jrft_utils.distributed <folder>``, so that every process unpickles the same job and calls it.
TRL's trainers, unmodified, then split every global batch across the processes. Conventions:

- the recipe is the same whatever the number of processes: each process takes ``batch_size / processes``
  samples of every global batch (:func:`per_device`), so that a step sees the same batch;
- only the main process (rank 0) writes: curves, metrics, the model and the job's return value;
- the caller does everything else (cache checks, marking the stage done), in its own single process: a
  run killed half way is trained again from the start, as a single-process one is.

On a machine without a GPU the processes talk over gloo; that is what the tests run.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from jrft_utils import profiles

JOB_FILE, RESULT_FILE, LOG_FILE = "job.pkl", "result.pkl", "launch.log"


@dataclass(frozen=True)
class Launch:
    """How to launch one run: ``processes`` (> 1) and the accelerate config file's path."""

    processes: int
    config_file: Path


def settings(run: dict[str, Any]) -> Launch | None:
    """The :class:`Launch` of a profile's ``run`` section, or ``None`` for one process (train in place)."""
    processes = run["processes"]
    if not isinstance(processes, int) or processes < 1:
        raise ValueError(f"run.processes must be a positive integer, got {processes!r}")
    if processes == 1:
        return None
    path = Path(run["accelerate_config"])
    path = path if path.is_absolute() else profiles.REPO_ROOT / path
    if not path.is_file():
        raise FileNotFoundError(f"run.accelerate_config: no accelerate config at {path} (see configs/accelerate/)")
    return Launch(processes, path)


def world_size() -> int:
    """How many processes train the run this process belongs to (1 outside a launch)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """Whether this process is the one that writes (rank 0, or the only process)."""
    return int(os.environ.get("RANK", "0")) == 0


def per_device(batch_size: int) -> int:
    """Each process's share of a global batch of ``batch_size`` samples."""
    n = world_size()
    if batch_size % n:
        raise ValueError(f"a batch of {batch_size} cannot be split evenly across {n} processes")
    return batch_size // n


def _free_port() -> int:
    with socket.socket() as s:  # two runs launched at once (run.workers) must not share a rendezvous port
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(job: Callable[[], Any], how: Launch, folder: str | Path) -> Any:
    """Run ``job`` (a picklable function of no arguments) in ``how.processes`` processes started by
    ``accelerate launch``, each process's output streamed here and kept in ``<folder>/launch.log``;
    return what the main process's call returned. Raises ``RuntimeError`` with the log's last lines when a
    process fails."""
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with open(folder / JOB_FILE, "wb") as f:
        pickle.dump(job, f)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(how.config_file),
               "--num_processes", str(how.processes), "--main_process_port", str(_free_port()),
               "-m", "jrft_utils.distributed", str(folder)]
    tail: deque[str] = deque(maxlen=40)
    # a session of its own, so that an interrupted notebook stops every process of the launch with it
    with open(folder / LOG_FILE, "w") as log, subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True) as process:
        try:
            for line in process.stdout:
                log.write(line)
                tail.append(line)
                print(line, end="", flush=True)
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    if process.returncode != 0:
        raise RuntimeError(f"the run launched in {how.processes} processes failed (exit {process.returncode}); "
                           f"the whole log is {folder / LOG_FILE}:\n{''.join(tail)}")
    with open(folder / RESULT_FILE, "rb") as f:
        return pickle.load(f)


def main(folder: str | Path) -> None:
    """One process of a :func:`launch`: call the job; the main process keeps its return value."""
    folder = Path(folder)
    with open(folder / JOB_FILE, "rb") as f:
        job = pickle.load(f)
    result = job()
    if is_main():
        with open(folder / RESULT_FILE, "wb") as f:
            pickle.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1])
