"""Live metrics (tokens/s of real tokens, MFU, gradient norm before clipping) in a run's metrics.csv, the pictures a
run leaves (curves.png), and `python -m bert_pl.cli.plot` over runs."""
import csv
import logging

import pytest
import torch
from omegaconf import OmegaConf

from bert_pl.training import monitor, plots
from conftest import run_cli, shared


def assert_png(path):
    from PIL import Image

    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as image:
        image.verify()


def rows(metrics_csv):
    with open(metrics_csv, newline="") as f:
        return list(csv.DictReader(f))


def test_real_tokens_leave_out_padding_and_count_each_packed_sequence():
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])
    assert monitor.real_tokens({"input_ids": torch.ones(2, 5), "attention_mask": mask}) == (5, 3 * 3 + 2 * 2)
    packed = torch.tensor([[1, 1, 2, 2, 2, 0], [1, 1, 1, 1, 0, 0]])  # two sequences in row 0, one in row 1
    assert monitor.real_tokens({"sequence_ids": packed, "attention_mask": packed > 0}) == (9, 4 + 9 + 16)


def test_pretraining_logs_throughput_mfu_and_grad_norm_per_logged_step_and_draws_curves(tmp_path, capsys):
    import bert_pl

    shared("corpus", "sample_text.txt")
    out = tmp_path / "run"
    peak = 1e12
    run = bert_pl.pretrain(["data=sample_text", "data.batch_size=4", "data.num_workers=0", "data.num_proc=1",
                            "data.val_fraction=0.2", "trainer.limit_val_batches=1", "trainer.val_check_interval=4",
                            "trainer.max_steps=4", "trainer.log_every_n_steps=2", "logger=csv",
                            "~callbacks.progress_bar", f"callbacks.monitor.peak_flops={peak}",
                            f"paths.cache_dir={tmp_path / 'cache'}"],
                           output_dir=str(out))
    assert run.run_dir == out and run.results["global_step"] == 4 and "train/loss" in run.metrics  # the API's Run
    stdout = capsys.readouterr().out
    logged = [r for r in rows(out / "csv" / "metrics.csv") if r.get("train/loss")]
    assert [int(r["step"]) for r in logged] == [1, 3]  # every logged step, and only those
    # MFU = (6 x non-embedding parameters + 12 x layers x hidden x sequence length) x tokens/s / peak
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    params = sum(v.numel() for k, v in ckpt["state_dict"].items() if ".embeddings." not in k)
    arch = ckpt["bert_pl"]["config"]
    longest = OmegaConf.load(out / "csv" / "hparams.yaml").data.max_seq_length  # the resolved config, logged
    for r in logged:
        tokens_per_s, mfu = float(r["perf/tokens_per_s"]), float(r["perf/mfu"])
        assert tokens_per_s > 0 and float(r["train/grad_norm"]) > 0
        per_token = mfu * peak / tokens_per_s
        attention = 12 * arch["num_hidden_layers"] * arch["hidden_size"] * longest
        assert 6 * params < per_token <= 6 * params + attention + 1, (per_token, params)
    # the norm is read before clipping (trainer.gradient_clip_val=1.0): a random model's gradients are larger
    assert max(float(r["train/grad_norm"]) for r in logged) > 1.0
    printed = [line for line in stdout.splitlines() if "tokens/s (training steps only)" in line]
    assert len(printed) == 1 and printed[0].startswith("4 steps, "), stdout[-2000:]
    assert any(r.get("val/loss") for r in rows(out / "csv" / "metrics.csv"))
    assert_png(out / "curves.png")


def test_the_end_of_run_print_reads_the_monitors_clock():
    from bert_pl.pretraining.module import RunSummary

    class Trainer:
        callbacks = [monitor.TrainingMonitor()]

    summary = RunSummary()
    summary.setup(Trainer, None, "fit")
    assert summary.clock is Trainer.callbacks[0].clock
    Trainer.callbacks[0].clock.add(1000, 0, 2.0)
    assert "1,000 tokens, 500 tokens/s" in summary.text(3)


def write_metrics(path, steps, losses, main):
    path.parent.mkdir(parents=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "perf/tokens_per_s", "step", "train/grad_norm", "train/loss", "val/dev/loss", "val/main"])
        for step, loss in zip(steps, losses):
            w.writerow([0, 1000 + step, step, 2.5, loss, "", ""])
        w.writerow([0, "", steps[-1], "", "", losses[-1] + 0.1, main])


def test_plot_command_overlays_runs_and_a_bad_run_is_one_line(tmp_path, capsys):
    from bert_pl.cli import plot

    for name, main in (("a", 0.7), ("b", 0.8)):
        write_metrics(tmp_path / name / "csv" / "metrics.csv", [1, 3, 5], [0.7, 0.6, 0.5], main)
    out = tmp_path / "both.png"
    plot.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)])
    assert "2 run(s) ->" in capsys.readouterr().out
    assert_png(out)
    plot.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)])  # a picture it drew is replaced
    assert_png(out)

    (tmp_path / "empty").mkdir()
    keep = tmp_path / "model.ckpt"
    keep.write_bytes(b"weights")
    for argv, expected in (([str(tmp_path / "absent")], "no such run folder"),
                           ([str(tmp_path / "empty")], "has no csv/metrics.csv"),
                           ([str(tmp_path / "a"), "--out", str(keep)], "name a .png, .pdf or .svg file")):
        with pytest.raises(SystemExit) as e:
            plot.main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and expected in err, err
    assert keep.read_bytes() == b"weights"
    fake = tmp_path / "notes.png"
    fake.write_text("my notes")
    with pytest.raises(SystemExit):
        plot.main([str(tmp_path / "a"), "--out", str(fake)])
    assert "is not a .png picture" in capsys.readouterr().err and fake.read_text() == "my notes"


def test_plot_command_line_is_one_line_in_a_subprocess(tmp_path):
    res = run_cli(["-m", "bert_pl.cli.plot", str(tmp_path / "nothing-here")])
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "no such run folder" in res.stderr, res.stderr


def test_a_plotting_failure_is_one_warning_never_a_failed_run(tmp_path, monkeypatch, caplog):
    from lightning.pytorch.loggers import CSVLogger

    write_metrics(tmp_path / "csv" / "metrics.csv", [1, 3], [0.7, 0.6], 0.5)

    class Trainer:
        loggers = [CSVLogger(str(tmp_path), name="csv", version="")]

    assert monitor.write_curves(Trainer, tmp_path) == tmp_path / "curves.png"
    assert_png(tmp_path / "curves.png")

    def broken(*args, **kwargs):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(plots, "curves", broken)
    with caplog.at_level(logging.INFO, logger="bert_pl"):
        assert monitor.write_curves(Trainer, tmp_path) is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no fonts" in warnings[0].getMessage()


def test_device_peak_flops_are_dense_and_known_only_for_known_devices(monkeypatch):
    from types import SimpleNamespace

    from lightning.pytorch.plugins.precision import MixedPrecision

    def trainer(device):
        return SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device(device)),
                               precision_plugin=MixedPrecision("bf16-mixed", "cuda"))

    assert monitor.device_peak_flops(trainer("cpu")) is None
    for name in ("NVIDIA H200", "NVIDIA H100 80GB HBM3"):  # Lightning's table has the H200 with 2:4 sparsity only
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None, name=name: name)
        assert monitor.device_peak_flops(trainer("cuda:0")) == pytest.approx(989.4e12), name
