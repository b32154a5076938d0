"""Sweeps: every `finetune.py -m` ends with one summary table; the optional Optuna sweeper and SLURM launcher
(requirements-sweeps.txt) compose from the real configs, an Optuna study runs end to end, and the SLURM launcher
writes a one-GPU job script (for a stand-in sbatch)."""
import csv
import json
import os

import pytest
from omegaconf import OmegaConf

from bert_pl.tasks import sweep
from conftest import run_cli, shared
from helpers import compose_cfg

HEADER = f"{'job':>4}  {'best':>8}  {'epoch':>5}  overrides"  # the summary table's first line
TINY_RUN = ["task=mrpc", "data.limit_train_examples=32", "data.limit_eval_examples=32", "trainer.max_epochs=1"]


def wandb_records(path):
    """The records of an offline W&B run file (run-ID.wandb): a 7-byte header, then a LevelDB-style log of
    protobuf records in 32 KiB blocks."""
    import struct

    from wandb.proto import wandb_internal_pb2

    data, pos, block, pieces = path.read_bytes(), 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pieces += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            pieces = b""
            yield record


def wandb_run(job_dir):
    """(name, group, config, summary) of the one W&B run in a job folder."""
    files = list((job_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    name = group = None
    config, summary = {}, {}
    for record in wandb_records(files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            name, group = record.run.display_name, record.run.run_group
        elif kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "summary":
            summary.update({item.key: json.loads(item.value_json) for item in record.summary.update})
    return name, group, config, summary


def test_plain_sweep_prints_the_summary_once_and_each_job_is_a_run_of_its_own(tiny_pretrained, tmp_path):
    from test_monitor import assert_png

    sweep_dir = tmp_path / "sweep"
    res = run_cli(["finetune.py", "-m", *TINY_RUN, f"pretrained={tiny_pretrained}", f"data_dir={shared('glue')}",
                   "optimizer.lr=1e-4,3e-5", f"hydra.sweep.dir={sweep_dir}", "logger=many"],
                  env={"WANDB_MODE": "offline", "HOME": str(tmp_path)})
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert [r["job"] for r in summary] == ["0", "1"] and {r["task"] for r in summary} == {"mrpc"}
    assert res.stdout.splitlines().count(HEADER) == 1 and res.stdout.count("best acc_and_f1=") == 1, res.stdout
    assert_png(sweep_dir / "summary.png")
    for job, lr in (("0", 1e-4), ("1", 3e-5)):
        name, group, config, run_summary = wandb_run(sweep_dir / job)
        assert name == f"optimizer.lr={lr}" and group == "sweep"  # named by what it sweeps, grouped by the sweep
        assert config["optimizer"]["lr"] == lr and config["task"]["name"] == "mrpc"
        results = json.loads((sweep_dir / job / "results.json").read_text())
        assert run_summary["best/acc_and_f1"] == results["best"]["value"]
        assert run_summary["dev/dev/f1"] == results["dev"]["dev"]["f1"]
        header = next(csv.reader(open(sweep_dir / job / "csv" / "metrics.csv")))  # CSV: one folder per job
        assert {"val/dev/loss", "train/loss_epoch"} <= set(header), header
        assert (sweep_dir / job / "csv" / "hparams.yaml").read_text().count("lr: ") >= 1
        assert_png(sweep_dir / job / "curves.png")


def test_every_sweep_registers_the_summary_and_it_prints_once(tmp_path, capsys):
    plain = compose_cfg("finetune", ["pretrained=/x"])
    grid = compose_cfg("finetune", ["pretrained=/x", "hparams_search=glue_grid"])
    assert plain.hydra.callbacks.sweep_summary._target_ == "bert_pl.tasks.sweep.SweepSummary"
    summaries = [c for c in grid.hydra.callbacks.values() if c._target_ == "bert_pl.tasks.sweep.SweepSummary"]
    assert len(summaries) == 2  # glue_grid's own `summary` and finetune.yaml's `sweep_summary`
    for job, value in (("0", 0.5), ("1", 0.75)):
        (tmp_path / job).mkdir()
        best = {"metric": "f1", "value": value, "epoch": 0}
        (tmp_path / job / "results.json").write_text(json.dumps(
            {"task": "mrpc", "overrides": [f"optimizer.lr={job}"], "best": best}))
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    callbacks = [sweep.SweepSummary(), sweep.SweepSummary()]
    for c in callbacks:
        c.on_multirun_start(config=config)
    for c in reversed(callbacks):  # Hydra's order at the end
        c.on_multirun_end(config=config)
    out = capsys.readouterr().out
    assert out.count("best f1=0.7500: job 1") == 1 and out.splitlines().count(HEADER) == 1, out
    assert (tmp_path / "summary.png").read_bytes()[:4] == b"\x89PNG" and f"sweep plot: {tmp_path}" in out


def test_summary_ranks_each_task_apart():
    rows = [{"job": "0", "task": "cola", "overrides": "task=cola", "metric": "mcc", "best": 0.2, "epoch": 1},
            {"job": "1", "task": "rte", "overrides": "task=rte", "metric": "acc", "best": 0.6, "epoch": 2},
            {"job": "2", "task": "cola", "overrides": "task=cola", "metric": "mcc", "best": 0.3, "epoch": 0},
            {"job": "3", "task": "rte", "overrides": "train=false", "metric": "acc", "best": None, "epoch": None}]
    table = sweep.format_table(rows)
    assert "best cola mcc=0.3000: job 2 (task=cola)" in table and "best rte acc=0.6000: job 1" in table
    assert [line.endswith(" *") for line in table.splitlines()[1:5]] == [False, True, True, False]


def test_optuna_and_slurm_configs_compose():
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="pip install -r requirements-sweeps.txt")
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -r requirements-sweeps.txt")
    cfg = compose_cfg("finetune", ["task=rte", "pretrained=/x", "hparams_search=optuna",
                                   "hydra/launcher=submitit_slurm"])
    sweeper, launcher = cfg.hydra.sweeper, cfg.hydra.launcher
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert cfg.hydra.mode.name == "MULTIRUN" and sweeper.sampler.seed == cfg.seed
    assert dict(sweeper.params) == {"optimizer.lr": "tag(log, interval(1e-5, 5e-5))",
                                    "data.batch_size": "choice(16, 32)", "trainer.max_epochs": "choice(2, 3, 4)"}
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (1, 1, 1)
    assert launcher.timeout_min > 60 and launcher.cpus_per_task and launcher.mem_gb


@pytest.mark.slow
def test_optuna_study_runs_end_to_end(tiny_pretrained, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="pip install -r requirements-sweeps.txt")
    # TINY_RUN's trainer.max_epochs=1 takes the epochs out of the search; lr and batch size are sampled
    res = run_cli(["finetune.py", "-m", "hparams_search=optuna", *TINY_RUN, f"pretrained={tiny_pretrained}",
                   f"data_dir={shared('glue')}", "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={tmp_path}"])
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["job"] for r in summary] == ["0", "1", "2"]
    lrs = [float(o.split("=")[1]) for r in summary for o in r["overrides"].split() if o.startswith("optimizer.lr=")]
    assert len(lrs) == 3 and all(1e-5 <= lr <= 5e-5 for lr in lrs)
    best = OmegaConf.load(tmp_path / "optimization_results.yaml")
    assert best.best_value == pytest.approx(max(r["best"] for r in summary))
    assert res.stdout.splitlines().count(HEADER) == 1


def test_slurm_launcher_submits_one_gpu_jobs(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -r requirements-sweeps.txt")
    bin_dir = tmp_path / "bin"  # a stand-in cluster: srun exists, sbatch keeps the job script and refuses it
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/job.sh\necho "error: no cluster" >&2\nexit 1\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    res = run_cli(["finetune.py", "-m", "hydra/launcher=submitit_slurm", "task=rte", "pretrained=/x",
                   "optimizer.lr=2e-5,3e-5", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                  env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert res.returncode != 0 and "no cluster" in res.stderr, res.stderr[-3000:]
    script = (tmp_path / "job.sh").read_text()
    for flag in ("--array=0-1%2", "--nodes=1", "--ntasks-per-node=1", "--gpus-per-node=1", "--cpus-per-task=8",
                 "--mem=32GB", "--time=360", "--signal=USR1@120"):  # USR1: the run writes last.ckpt before the limit
        assert f"#SBATCH {flag}\n" in script, script
