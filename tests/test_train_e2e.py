"""End to end: train.py as a user runs it, on Google's sample text, a few steps."""
import csv
import json

import pytest
import torch

from conftest import ROOT, run_cli, shared

FAST = ["data=sample_text", "data.batch_size=4", "data.num_workers=0", "data.num_proc=1", "trainer.log_every_n_steps=1",
        "trainer.val_check_interval=1000", "logger=csv",
        # dropout on (Google's 0.1; the bert_tiny demo preset has none): resume must restore its random state too
        "model.hidden_dropout_prob=0.1", "model.attention_probs_dropout_prob=0.1"]


def train(tmp_path, run, *extra, timeout=600, env=None):
    shared("corpus", "sample_text.txt")
    out = tmp_path / run
    args = ["train.py", *FAST, f"hydra.run.dir={out}", f"paths.cache_dir={tmp_path / 'cache'}", *extra]
    return run_cli(args, timeout=timeout, env=env), out


def losses(run_dir):
    with open(run_dir / "csv" / "metrics.csv") as f:
        return {int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(f)
                if r.get("train/loss")}


def test_tiny_run_writes_checkpoint_with_tokenizer(tmp_path):
    res, out = train(tmp_path, "a", "trainer.max_steps=3", "callbacks.last_checkpoint.every_n_train_steps=3")
    assert res.returncode == 0, res.stderr[-3000:]
    last = out / "checkpoints" / "last.ckpt"
    assert last.is_file() and f"checkpoint: {last}" in res.stdout
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["global_step"] == 3
    info = ckpt["bert_pl"]
    assert json.loads(info["tokenizer"])["model"]["type"] == "WordPiece"
    assert info["config"]["hidden_size"] == 128 and info["nsp"] is True
    assert (out / "tokenizer" / "vocab.txt").is_file()
    assert (out / ".hydra" / "config.yaml").is_file()


def test_without_logger_trains_and_lightning_prints_each_message_once(tmp_path):
    """logger=[] drops the learning-rate monitor (it needs a logger); Lightning's own console handler sits beside
    Hydra's and used to print every message twice."""
    shared("corpus", "sample_text.txt")
    args = ["train.py", *[a for a in FAST if a != "logger=csv"], "logger=[]", "trainer.max_steps=2",
            f"hydra.run.dir={tmp_path / 'a'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    res = run_cli(args, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    console = res.stdout + res.stderr
    assert console.count("`Trainer.fit` stopped: `max_steps=2` reached") == 1, console[-3000:]
    assert console.count("Seed set to") == 1 and "Tip:" not in console
    assert "`Trainer.fit` stopped" in (tmp_path / "a" / "train.log").read_text()  # and the job's log file has it


def test_kill_mid_run_then_resume_gives_the_same_losses(tmp_path):
    """kill -9 a real train.py mid-epoch, resume from last.ckpt: the run continues at the checkpoint's step with the
    same optimizer/scheduler state, data order, masks and dropout RNG, so each logged loss equals the uninterrupted
    run's (dropout on, as users train)."""
    import signal
    import subprocess
    import sys
    import time

    steps = ["trainer.max_steps=16", "callbacks.last_checkpoint.every_n_train_steps=4"]
    res, full = train(tmp_path, "full", *steps)
    assert res.returncode == 0, res.stderr[-3000:]

    killed = tmp_path / "killed"
    args = [sys.executable, "train.py", *FAST, *steps, f"hydra.run.dir={killed}",
            f"paths.cache_dir={tmp_path / 'cache'}", "+callbacks.slow._target_=tests.helpers.SlowSteps"]
    proc = subprocess.Popen(args, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    last = killed / "checkpoints" / "last.ckpt"
    while not last.is_file() and time.time() < deadline:  # the first save is at step 4
        assert proc.poll() is None, "train.py ended before it could be killed"
        time.sleep(0.05)
    time.sleep(0.5)  # well inside the next 4 steps
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == ["last.ckpt"]  # one full state, no copies
    k = torch.load(last, weights_only=True)["global_step"]
    assert 4 <= k < 16
    assert not list((killed / "checkpoints").glob("*.tmp"))  # no partial file that could pass for a checkpoint

    res, resumed = train(tmp_path, "resumed", *steps, f"ckpt_path={last}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 16
    ref, after = losses(full), losses(resumed)
    assert sorted(after) == list(range(k, 16))  # continues at step k, nothing repeated or skipped
    for step in after:
        assert after[step] == ref[step], step  # bit-identical


def test_max_seq_length_above_positions_is_one_clear_line(tmp_path):
    res, _ = train(tmp_path, "bad", "data.max_seq_length=1024", "trainer.max_steps=1")
    assert res.returncode == 2
    assert "data.max_seq_length=1024 exceeds the model's max_position_embeddings=512" in res.stderr
    assert "Traceback" not in res.stderr


def test_missing_corpus_is_one_clear_line(tmp_path):
    res, _ = train(tmp_path, "bad", "data=text", f"data.source.paths=[{tmp_path}/nope.txt]", "trainer.max_steps=1")
    assert res.returncode == 2 and "does not exist" in res.stderr and "Traceback" not in res.stderr


def test_unknown_model_name_lists_options(tmp_path):
    res, _ = train(tmp_path, "bad", "model=bert_huge")
    assert res.returncode != 0 and "bert_huge" in res.stderr and "bert_base" in res.stderr


@pytest.mark.slow
def test_bert_base_two_steps_on_cpu(tmp_path):
    res, out = train(tmp_path, "base", "model=bert_base", "trainer.max_steps=2", "data.max_seq_length=128")
    assert res.returncode == 0, res.stderr[-3000:]
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2


def test_phase2_starts_from_phase1_weights_with_a_fresh_optimizer(tmp_path):
    res, p1 = train(tmp_path, "p1", "trainer.max_steps=3", "callbacks.last_checkpoint.every_n_train_steps=3")
    assert res.returncode == 0, res.stderr[-3000:]
    phase1 = p1 / "checkpoints" / "last.ckpt"
    res, bad = train(tmp_path, "p2bad", "experiment=bert_base_phase2", f"pretrained={phase1}", "data=sample_text",
                     "accelerator=cpu")
    assert res.returncode == 2 and "hidden_size=128, num_hidden_layers=2" in res.stderr  # a tiny ckpt, base preset
    assert "hidden_size=768" in res.stderr and "Traceback" not in res.stderr
    res, p2 = train(tmp_path, "p2", "experiment=bert_base_phase2", "model=bert_tiny", f"pretrained={phase1}",
                    "data=sample_text",
                    "accelerator=cpu", "trainer.accumulate_grad_batches=1", "trainer.max_steps=2",
                    "data.batch_size=4", "callbacks.last_checkpoint.every_n_train_steps=2",
                    "trainer.val_check_interval=1000")
    assert res.returncode == 0, res.stderr[-3000:]
    a = torch.load(phase1, weights_only=True)
    b = torch.load(p2 / "checkpoints" / "last.ckpt", weights_only=True)
    assert b["global_step"] == 2  # a fresh schedule, not phase 1's step count
    assert b["bert_pl"]["config"]["hidden_size"] == 128  # the architecture comes from phase 1's checkpoint
    assert "newly initialised" not in res.stderr + res.stdout  # every weight came from phase 1
    emb = "model.bert.embeddings.word_embeddings.weight"
    assert (a["state_dict"][emb] - b["state_dict"][emb]).abs().max() < 0.05  # 2 small steps away from phase 1


def test_unknown_key_and_bad_value_are_one_clear_line(tmp_path):
    res, _ = train(tmp_path, "bad", "data.not_a_key=1")
    assert res.returncode != 0 and "not_a_key" in res.stderr and "Traceback" not in res.stderr
    res, _ = train(tmp_path, "bad2", "data.masked_lm_prob=1.5", "trainer.max_steps=1")
    assert res.returncode == 2 and "error: data.masked_lm_prob=1.5 must be in (0, 1)" in res.stderr
    assert "Traceback" not in res.stderr


def test_offline_hub_corpus_says_what_to_pass(tmp_path):
    res, _ = train(tmp_path, "hub", "data=wikipedia", "trainer.max_steps=1")
    assert res.returncode == 2 and "not reachable (offline)" in res.stderr and "data.source.name=" in res.stderr


def test_secrets_never_reach_the_run_folder(tmp_path):
    secret = "wandb-secret-0123456789abcdef0123456789abcdef"
    res, out = train(tmp_path, "s", "trainer.max_steps=2", "callbacks.last_checkpoint.every_n_train_steps=2",
                     env={"WANDB_API_KEY": secret, "HF_TOKEN": secret})
    assert res.returncode == 0, res.stderr[-2000:]
    assert secret not in res.stdout + res.stderr
    for f in out.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


def test_ddp_two_cpu_processes_train_on_disjoint_data_into_one_folder(tmp_path):
    res, out = train(tmp_path, "ddp", "trainer.devices=2", "accelerator=cpu", "strategy=ddp", "trainer.max_steps=3",
                     "callbacks.last_checkpoint.every_n_train_steps=3",
                     "+callbacks.samples._target_=tests.helpers.RecordRankSamples",
                     f"+callbacks.samples.output_dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"samples_rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    # one epoch split between the ranks: every sample once, plus the wrap-around padding that evens them up
    a, b = ranks[0]["indices"], ranks[1]["indices"]
    n = len(set(a) | set(b))
    assert len(a) == len(b) < 64 and set(a) | set(b) == set(range(n))
    assert len(set(a) & set(b)) == (-n) % 2 == len(a) + len(b) - n
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    # one run folder for both processes (rank 1 must not open its own Hydra output folder)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["cache", "ddp"]


@pytest.mark.parametrize("data", [["data.streaming=true", "data.docs_per_shard=8", "data.num_workers=2"],
                                  ["data.packing=true", "data.num_workers=2"]],
                         ids=["streaming+workers", "cached+packing+workers"])
def test_streaming_and_packed_runs_resume_at_the_exact_sample(data, tmp_path):
    """data.streaming=true (no cache, instances made on the fly) and data.packing=true, with two loader workers
    (kept alive between epochs): resuming from a mid-run checkpoint gives the uninterrupted run's loss at every
    later step, dropout on."""
    steps = [*data, "trainer.max_steps=10",
             "callbacks.last_checkpoint.every_n_train_steps=4", "callbacks.last_checkpoint.save_top_k=-1"]
    res, full = train(tmp_path, "full", *steps)
    assert res.returncode == 0, res.stderr[-3000:]
    if "data.streaming=true" in data:
        assert not list((tmp_path / "cache").glob("pretrain-*"))  # nothing cached
    mid = full / "checkpoints" / "step0000004.ckpt"
    res, resumed = train(tmp_path, "resumed", *steps, f"ckpt_path={mid}")
    assert res.returncode == 0, res.stderr[-3000:]
    ref, after = losses(full), losses(resumed)
    assert sorted(after) == list(range(4, 10))
    for step in after:
        assert after[step] == ref[step], step  # bit-identical


def test_multirun_of_ddp_jobs_runs_every_job(tmp_path):
    """Hydra's in-process launcher runs the sweep's jobs one after another in one process; each DDP job must start
    its own second rank (Lightning's launcher leaves LOCAL_RANK & co. behind, which bert-pl restores)."""
    shared("corpus", "sample_text.txt")
    res = run_cli(["train.py", "-m", *FAST, "trainer.devices=2", "accelerator=cpu", "strategy=ddp",
                   "trainer.max_steps=2", "callbacks.last_checkpoint.every_n_train_steps=2", "seed=1,2",
                   f"hydra.sweep.dir={tmp_path / 'sweep'}", f"paths.cache_dir={tmp_path / 'cache'}"], timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    for job in ("0", "1"):
        ckpt = tmp_path / "sweep" / job / "checkpoints" / "last.ckpt"
        assert torch.load(ckpt, weights_only=True)["global_step"] == 2
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()) == ["0", "1"]



def test_ddp_pretraining_resumes_bit_identically(tmp_path):
    """2 CPU processes (gloo), dropout on: resuming from a mid-run step checkpoint (each rank's own random state,
    each rank's own place in its shard) gives the uninterrupted run's losses."""
    steps = ["trainer.devices=2", "accelerator=cpu", "strategy=ddp", "trainer.max_steps=8",
             "callbacks.last_checkpoint.every_n_train_steps=4", "callbacks.last_checkpoint.save_top_k=-1"]
    res, full = train(tmp_path, "full", *steps)
    assert res.returncode == 0, res.stderr[-3000:]
    res, resumed = train(tmp_path, "resumed", *steps, f"ckpt_path={full / 'checkpoints' / 'step0000004.ckpt'}")
    assert res.returncode == 0, res.stderr[-3000:]
    ref, after = losses(full), losses(resumed)
    assert sorted(after) == list(range(4, 8))
    for step in after:
        assert after[step] == ref[step], step
