"""The papermill runner: selection, parameters, and one-line errors on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest

from jrft_utils import reproduce
from jrft_utils.profiles import REPO_ROOT


def _write_notebook(path, params_source, code="x = 1"):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params_source)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell, nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nbformat.write(nb, path)


@pytest.fixture
def fake_notebooks(tmp_path):
    _write_notebook(tmp_path / "00_base.ipynb", 'profile = "cpu"\nseed = 0')
    _write_notebook(tmp_path / "01_next.ipynb", 'profile = "cpu"\nseeds = None\nlr = None')
    _write_notebook(tmp_path / "02_last.ipynb", 'profile = "cpu"')
    return reproduce.discover(tmp_path)


def test_discover_reads_parameters_in_order(fake_notebooks):
    assert [nb.number for nb in fake_notebooks] == ["00", "01", "02"]
    assert fake_notebooks[1].parameters == ("profile", "seeds", "lr")


def test_select_only_and_from(fake_notebooks):
    assert [nb.number for nb in reproduce.select(fake_notebooks, ["02", "00"], None)] == ["00", "02"]
    assert [nb.number for nb in reproduce.select(fake_notebooks, None, "01_next")] == ["01", "02"]
    assert len(reproduce.select(fake_notebooks, None, None)) == 3
    with pytest.raises(reproduce.RunnerError, match="unknown notebook '07'"):
        reproduce.select(fake_notebooks, ["07"], None)
    with pytest.raises(reproduce.RunnerError, match="either"):
        reproduce.select(fake_notebooks, ["00"], "01")


def test_plan_passes_seeds_and_parameters_only_where_declared(fake_notebooks):
    steps = reproduce.plan(fake_notebooks, "smoke", [3, 4], {"lr": 0.1})
    assert [params for _, params in steps] == [
        {"profile": "smoke"}, {"profile": "smoke", "seeds": [3, 4], "lr": 0.1}, {"profile": "smoke"}]


def test_the_notebooks_that_pretrain_a_base_can_rebuild_it():
    declare = {nb.path.stem for nb in reproduce.discover() if "rebuild_base" in nb.parameters}
    assert declare == {"00_base_model", "08_text_only"}  # what --rebuild-base reaches


def test_plan_rejects_unknown_parameter_and_profile(fake_notebooks):
    with pytest.raises(reproduce.RunnerError, match="'momentum' is not a parameter"):
        reproduce.plan(fake_notebooks, "smoke", None, {"momentum": 0.9})
    with pytest.raises(Exception, match="unknown profile 'tpu'"):
        reproduce.plan(fake_notebooks, "tpu", None, {})


def test_parse_parameter_literals_and_errors():
    assert reproduce.parse_parameter("lr=3e-4") == ("lr", 3e-4)
    assert reproduce.parse_parameter("seeds=[1, 2]") == ("seeds", [1, 2])
    assert reproduce.parse_parameter("name=gt") == ("name", "gt")
    with pytest.raises(reproduce.RunnerError, match="name=value"):
        reproduce.parse_parameter("lr")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "jrft_utils.reproduce", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("args, message", [
    (["--profile", "tpu"], "error: unknown profile 'tpu'"),
    (["--profile", "smoke", "--only", "99"], "error: unknown notebook '99'"),
    (["--profile", "smoke", "-p", "no_such_knob=1"], "error: parameter 'no_such_knob' is not a parameter"),
    (["--profile", "smoke", "--only", "02", "--rebuild-base"], "error: parameter 'rebuild_base' is not a parameter"),
])
def test_cli_bad_input_is_one_line_error(args, message):
    result = _cli(*args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line
    assert result.stderr.startswith(message)
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_missing_upstream_artifact_names_the_notebook_to_run():
    later = reproduce.discover()[1:]
    if not later:
        pytest.skip("only one notebook exists")
    result = _cli("--profile", "smoke", "--only", later[0].number)  # fresh run root: nothing upstream
    assert result.returncode == 1
    assert "FAILED" in result.stderr and "executed notebook:" in result.stderr
    assert "00" in result.stderr.split("FAILED", 1)[1]  # tells which notebook makes the artifact
    assert "Traceback" not in result.stderr


def _figure_notebook(path, name, extra=""):
    """A notebook that writes ``<name>.png`` into the profile's figures folder and counts its executions."""
    _write_notebook(path, 'profile = "smoke"', code=(
        "from jrft_utils import profiles\n"
        f"out = profiles.resolve(profile).figures_dir / {name + '.png'!r}\n"
        "out.write_text('figure')\n"
        f"count = profiles.resolve(profile).run_dir / {name + '.count'!r}\n"
        f"count.write_text(str(int(count.read_text()) + 1 if count.exists() else 1)){extra}"))


def test_unchanged_notebooks_are_reused_and_a_rerun_upstream_reruns_what_follows(tmp_path, capsys):
    _figure_notebook(tmp_path / "00_first.ipynb", "first")
    _figure_notebook(tmp_path / "01_second.ipynb", "second")
    run_dir = reproduce.profiles.resolve("smoke").run_dir
    figures = reproduce.profiles.resolve("smoke").figures_dir

    def executions():
        return {n: int((run_dir / f"{n}.count").read_text()) for n in ("first", "second")}

    def run(**kwargs):
        assert reproduce.run("smoke", notebooks_dir=tmp_path, **kwargs) == 0
        return capsys.readouterr().out

    run()
    assert executions() == {"first": 1, "second": 1}
    out = run()  # nothing changed: both reused, nothing executed
    assert executions() == {"first": 1, "second": 1} and out.count("reused (") == 2 and "2 reused" in out
    _figure_notebook(tmp_path / "00_first.ipynb", "first", extra="\nchanged = True")
    run()  # a changed cell: it runs again, and so does the notebook after it
    assert executions() == {"first": 2, "second": 2}
    (figures / "second.png").unlink()
    run()  # a figure gone: that notebook runs again, the one before it is reused
    assert executions() == {"first": 2, "second": 3}
    run(only=["00"], force=True)
    assert executions() == {"first": 3, "second": 3}
    run()  # its upstream was executed again since it ran
    assert executions() == {"first": 3, "second": 4}


def test_stage_times_sum_the_runs_finished_since_the_start_per_stage(tmp_path):
    def write(rel, total, parts, age=0.0):
        path = tmp_path / rel / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"train_time_s": total} | ({"time_s": parts} if parts is not None else {})))
        if age:
            os.utime(path, (path.stat().st_mtime - age,) * 2)

    write("finetune/rft/lr0.0001/seed0-a", 10.0, {"evaluation": 2.0, "sampling": 3.0, "rest": 5.0})
    write("finetune/rft/lr0.0003/seed0-b", 20.0, {"evaluation": 4.0, "sampling": 6.0, "rest": 10.0})
    write("text/rft/seed1-c", 5.0, {"evaluation": 1.0, "rest": 4.0})
    write("finetune/gt/lr0.0003/seed0-d", 7.0, {"evaluation": 1.0, "rest": 6.0}, age=3600)  # cached: not this run's
    write("finetune/teacher/lr0.0003/seed0-e", 9.0, None)  # a run from before time was recorded
    stages = reproduce.stage_times(tmp_path, since=os.stat(tmp_path / "text").st_mtime - 60)
    assert stages == {"finetune/rft": {"runs": 2, "total": 30.0, "evaluation": 6.0, "sampling": 9.0, "rest": 15.0},
                      "text/rft": {"runs": 1, "total": 5.0, "evaluation": 1.0, "rest": 4.0}}
    assert reproduce.stage_record(stages) == {  # the summary's shape: seconds by stage and stage/part
        "finetune/rft": 30.0, "finetune/rft/evaluation": 6.0, "finetune/rft/sampling": 9.0, "finetune/rft/rest": 15.0,
        "text/rft": 5.0, "text/rft/evaluation": 1.0, "text/rft/rest": 4.0}
    table = reproduce.stage_table(stages).splitlines()
    assert table[0].split()[:3] == ["stage", "runs", "total"] and table[1].startswith("finetune/rft")
    assert table[2].split() == ["text/rft", "1", "5", "1", "-", "-", "-", "4"]


def test_only_the_reproduction_keeps_its_executed_copies_beside_the_notebooks(tmp_path):
    cpu, smoke = reproduce.profiles.resolve("cpu"), reproduce.profiles.resolve("smoke")
    assert reproduce.published_dir(cpu, {}, tmp_path) == tmp_path / "executed"
    assert reproduce.published_dir(cpu, {"seeds": [3]}, tmp_path) is None  # an exercise: never over the committed copies
    assert reproduce.published_dir(smoke, {}, tmp_path) is None  # its figures stay in its run folder
    executed = tmp_path / "run" / "00_a.ipynb"
    executed.parent.mkdir()
    _write_notebook(executed, 'profile = "cpu"')
    copy = nbformat.read(reproduce.publish(executed, tmp_path / "executed"), as_version=4)
    assert copy.metadata["keep_output"] is True  # nbstripout's commit filter keeps its outputs
    assert [c.source for c in copy.cells] == [c.source for c in nbformat.read(executed, as_version=4).cells]


def test_memory_watch_sees_the_memory_of_a_child_process():
    hold = "import time; block = bytearray(300 * 2**20); block[::4096] = b'x' * len(block[::4096]); time.sleep(3)"
    with reproduce.MemoryWatch(every=0.1) as watch:
        subprocess.run([sys.executable, "-c", hold], check=True)
    assert 0.28 < watch.peak_gb < 2.0
