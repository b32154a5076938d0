"""BERT's WordPiece tokenizer built with `tokenizers`: Google's vocab.txt in, or a new vocab trained from a corpus.

The pipeline is BERT's: clean text (drop control chars), split CJK characters, lowercase + strip accents when
uncased, split on whitespace and punctuation, then greedy longest-match WordPiece with `##` continuations.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Optional

from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece
from tokenizers.trainers import WordPieceTrainer

from bert_pl.errors import UserError

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
REQUIRED_TOKENS = ["[UNK]", "[CLS]", "[SEP]", "[MASK]", "[PAD]"]


class VocabError(UserError, ValueError):
    pass


def _assemble(model: WordPiece, lowercase: bool, handle_chinese_chars: bool = True,
              strip_accents: Optional[bool] = None) -> Tokenizer:
    tok = Tokenizer(model)
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=handle_chinese_chars, strip_accents=strip_accents, lowercase=lowercase
    )  # strip_accents=None follows `lowercase`, as in BERT
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def _add_post_processor(tok: Tokenizer, source: str) -> Tokenizer:
    vocab = tok.get_vocab()
    missing = [t for t in REQUIRED_TOKENS if t not in vocab]
    if missing:
        raise VocabError(
            f"{source}: the vocabulary lacks {', '.join(missing)}; a BERT vocab needs all of "
            f"{', '.join(REQUIRED_TOKENS)} (use Google's vocab.txt, or leave data.tokenizer.path unset to train one)"
        )
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return tok


def from_vocab_file(vocab_file, lowercase: bool = True) -> Tokenizer:
    """Google's vocab.txt: one token per line, the line number is the id."""
    path = Path(vocab_file)
    if not path.is_file():
        raise FileNotFoundError(f"vocab file {path} does not exist")
    vocab = {}
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            token = line.rstrip("\n").rstrip("\r")
            if token and token not in vocab:
                vocab[token] = i
    if not vocab:
        raise VocabError(f"{path}: the vocab file is empty")
    return _from_vocab(vocab, lowercase, str(path))


def _from_vocab(vocab: dict, lowercase: bool, source: str, **normalizer) -> Tokenizer:
    tok = _assemble(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100), lowercase, **normalizer)
    # whole, never lowercased or split, as in tokenizers trained here and HF's: "Paris is the [MASK]." has a mask
    tok.add_special_tokens([t for t in SPECIAL_TOKENS if t in vocab])
    return _add_post_processor(tok, source)


def from_tokenizer_json(path) -> Tokenizer:
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # the tokenizers library raises a bare Exception for malformed or truncated JSON
        if not Path(path).is_file():
            raise
        raise VocabError(f"{path}: not a readable tokenizer.json ({str(e).splitlines()[0][:160]}); the file is "
                         f"damaged or truncated: re-create it, or pass a vocab.txt") from None
    return _add_post_processor(tok, str(path))


def from_json_string(text: str) -> Tokenizer:
    return _add_post_processor(Tokenizer.from_str(text), "checkpoint tokenizer")


def train(texts: Iterable[str], vocab_size: int = 8000, lowercase: bool = True, min_frequency: int = 2,
          limit_alphabet: int = 1000, handle_chinese_chars: bool = True,
          strip_accents: Optional[bool] = None) -> Tokenizer:
    """Train a WordPiece vocab on an iterator of texts (streamed; memory grows with the distinct words only).
    `limit_alphabet`: the most frequent characters kept (the rest become [UNK]); CJK text needs thousands.
    `handle_chinese_chars`: every CJK ideograph a word of its own (BERT's rule); `strip_accents` None = with
    `lowercase` (BERT's), False keeps diacritics (and Japanese voiced marks, which NFD would split off).

    Deterministic: the same texts and settings give the same vocab, byte for byte, in any process. `tokenizers`'
    trainer alone does not: it numbers each `##c` piece when it first meets it while walking its word counts, a
    Rust HashMap whose order is random per process, and those numbers break ties between merges of equal count
    (ties at the `limit_alphabet` cut are random too). So the words are counted here, the alphabet is chosen here
    (most frequent first, ties by character), and the characters then the `##c` pieces are numbered up front, each
    in code point order: the trainer's own layout (and tie-breaks), without the random part."""
    normalizer = dict(handle_chinese_chars=handle_chinese_chars, strip_accents=strip_accents)
    pipeline = _assemble(WordPiece(unk_token="[UNK]"), lowercase, **normalizer)  # BERT's normaliser, pre-tokeniser
    normalize, split = pipeline.normalizer.normalize_str, pipeline.pre_tokenizer.pre_tokenize_str
    counts: Counter = Counter()
    for text in texts:
        counts.update(word for word, _ in split(normalize(text)))
    return train_from_counts(counts, vocab_size, lowercase, min_frequency, limit_alphabet, handle_chinese_chars,
                             strip_accents)


def train_from_counts(counts: Counter, vocab_size: int = 8000, lowercase: bool = True, min_frequency: int = 2,
                      limit_alphabet: int = 1000, handle_chinese_chars: bool = True,
                      strip_accents: Optional[bool] = None) -> Tokenizer:
    """`train` from word counts made already (normalised, pre-tokenised words; e.g. merged from processes that
    each counted a part of a corpus): the alphabet, `##` pieces, trainer and tie-breaks that make `train`
    deterministic."""
    normalizer = dict(handle_chinese_chars=handle_chinese_chars, strip_accents=strip_accents)
    chars: Counter = Counter()
    for word, n in counts.items():
        for c in word:
            chars[c] += n
    alphabet = sorted(c for c, _ in sorted(chars.items(), key=lambda kv: (-kv[1], kv[0]))[:limit_alphabet])
    kept = set(alphabet)
    pieces = sorted({"##" + c for word in counts for c in word[1:] if c in kept})
    trainer = WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        # passed as "special" tokens only to be numbered first; the tokenizer returned keeps them plain
        special_tokens=SPECIAL_TOKENS + alphabet + pieces,
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),  # exactly these characters: the trainer ranks them infinitely frequent
        continuing_subword_prefix="##",
        show_progress=False,
    )
    words = Tokenizer(WordPiece(unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()  # the words are normalised and split already
    words.train_from_iterator(_repeat_words(counts), trainer=trainer)
    return _from_vocab(words.get_vocab(), lowercase, "trained tokenizer", **normalizer)


def _repeat_words(counts: Counter, chunk: int = 4096) -> Iterator[str]:
    """Each word `count` times, space-separated, so the trainer counts what `counts` holds."""
    for word, n in counts.items():
        for done in range(0, n, chunk):
            yield " ".join([word] * min(chunk, n - done))


def save(tok: Tokenizer, directory) -> None:
    """Writes tokenizer.json and a Google-style vocab.txt (ids in line order) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    vocab = tok.get_vocab()
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise VocabError("tokenizer ids are not contiguous; cannot write vocab.txt")
    (directory / "vocab.txt").write_text("".join(t + "\n" for t, _ in by_id), encoding="utf-8")


def load(path, lowercase: Optional[bool] = None) -> Tokenizer:
    """A folder (tokenizer.json preferred, else vocab.txt) or a file of either kind."""
    path = Path(path)
    if path.is_dir():
        if (path / "tokenizer.json").is_file():
            return from_tokenizer_json(path / "tokenizer.json")
        if (path / "vocab.txt").is_file():
            lower = _lowercase_hint(path) if lowercase is None else lowercase
            return from_vocab_file(path / "vocab.txt", lowercase=lower)
        raise FileNotFoundError(f"{path}: no tokenizer.json or vocab.txt in this folder")
    if path.suffix == ".json":
        return from_tokenizer_json(path)
    return from_vocab_file(path, lowercase=True if lowercase is None else lowercase)


def _lowercase_hint(folder: Path) -> bool:
    """Hugging Face folders say so in tokenizer_config.json; Google's folder names say 'cased' or 'uncased'."""
    from bert_pl.model.bert import read_json_config

    cfg = folder / "tokenizer_config.json"
    if cfg.is_file():
        return bool(read_json_config(cfg).get("do_lower_case", True))
    name = folder.name.lower()
    return not (name.startswith("cased") or "_cased" in name or "-cased" in name)


def special_ids(tok: Tokenizer) -> dict:
    vocab = tok.get_vocab()
    return {t: vocab[t] for t in SPECIAL_TOKENS}


def lowercase_of(tok: Tokenizer) -> bool:
    import json

    norm = json.loads(tok.to_str()).get("normalizer") or {}
    return bool(norm.get("lowercase", False))
