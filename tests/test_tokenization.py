import json

import pytest

from bert_pl.io import tokenization
from conftest import shared


def glue_sentences(limit=300):
    out = []
    for task, col in (("MRPC", 3), ("SST-2", 0), ("STS-B", 7)):
        path = shared("glue", task, "dev.tsv")
        lines = path.read_text(encoding="utf-8-sig").splitlines()[1:limit // 3 + 1]
        out += [ln.split("\t")[col] for ln in lines if len(ln.split("\t")) > col]
    return out


def test_google_vocab_matches_reference_tokenizer_json(minilm_dir, minilm_tokenizer):
    """Our tokenizer built from Google's vocab.txt gives the same ids as the model's own tokenizer.json."""
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    reference.no_truncation()
    reference.no_padding()
    texts = glue_sentences() + shared("corpus", "sample_text.txt").read_text(encoding="utf-8").splitlines()[:40]
    for text in texts:
        assert minilm_tokenizer.encode(text).ids == reference.encode(text).ids, text


def test_pairs_and_token_types(minilm_tokenizer):
    enc = minilm_tokenizer.encode("Hello there.", "General Kenobi!")
    assert enc.tokens[0] == "[CLS]" and enc.tokens.count("[SEP]") == 2
    first_sep = enc.tokens.index("[SEP]")
    assert enc.type_ids == [0] * (first_sep + 1) + [1] * (len(enc.ids) - first_sep - 1)


def test_bert_normalisation(minilm_tokenizer):
    # uncased: lowercase + accents stripped; CJK characters split; punctuation split; control chars dropped
    assert minilm_tokenizer.encode("Café", add_special_tokens=False).tokens == ["cafe"]
    assert minilm_tokenizer.encode("力加", add_special_tokens=False).tokens == ["力", "加"]
    assert minilm_tokenizer.encode("hello,world", add_special_tokens=False).tokens == ["hello", ",", "world"]
    assert minilm_tokenizer.encode("a\x00b\x07", add_special_tokens=False).tokens == ["ab"]


def test_unicode_sample_text(minilm_tokenizer):
    text = shared("corpus", "sample_text.txt").read_text(encoding="utf-8")
    line = next(ln for ln in text.splitlines() if "力加勝北区" in ln)
    tokens = minilm_tokenizer.encode(line, add_special_tokens=False).tokens
    for ch in "力加勝北区":
        assert ch in tokens  # each CJK character is its own token


def test_cased_vocab_keeps_case(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "Hello", "hello", "Café"]) + "\n")
    cased = tokenization.from_vocab_file(vocab, lowercase=False)
    assert cased.encode("Hello Café", add_special_tokens=False).tokens == ["Hello", "Café"]


def test_vocab_without_specials_is_rejected(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\nhello\n")
    with pytest.raises(tokenization.VocabError, match=r"lacks \[SEP\], \[MASK\]"):
        tokenization.from_vocab_file(vocab)


def test_train_save_load_roundtrip(tmp_path):
    text = shared("corpus", "sample_text.txt").read_text(encoding="utf-8").splitlines()
    tok = tokenization.train(text, vocab_size=600, lowercase=True, min_frequency=1)
    assert tok.get_vocab_size() <= 600
    ids = tokenization.special_ids(tok)
    assert [ids[t] for t in tokenization.SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    tokenization.save(tok, tmp_path)
    again = tokenization.load(tmp_path / "vocab.txt")  # Google format round trip
    sample = "The quick brown fox jumped over the lazy dog."
    assert again.encode(sample).ids == tok.encode(sample).ids
    assert tokenization.lowercase_of(tok)
    assert json.loads((tmp_path / "tokenizer.json").read_text())["model"]["type"] == "WordPiece"


_TRAIN_AND_SAVE = """
import sys
from bert_pl.io import tokenization
from bert_pl.pretraining.corpus import google_documents
texts = (s for doc in google_documents(sys.argv[1]) for s in doc)
tokenization.save(tokenization.train(texts, vocab_size=600, min_frequency=1), sys.argv[2])
"""


def test_trained_vocab_is_byte_identical_across_processes(tmp_path):
    """Same corpus and settings, fresh processes with different hash seeds and the trainer's threads on: the same
    vocab.txt and tokenizer.json, byte for byte (before: a different vocab in every fresh cache)."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    corpus = shared("corpus", "sample_text.txt")
    outputs = []
    for hash_seed in ("1", "2", "3"):
        env = {k: v for k, v in os.environ.items() if k != "TOKENIZERS_PARALLELISM"}  # threads on, as in train.py
        out = tmp_path / f"seed{hash_seed}"
        subprocess.run([sys.executable, "-c", _TRAIN_AND_SAVE, str(corpus), str(out)], cwd=ROOT, check=True,
                       env=dict(env, PYTHONHASHSEED=hash_seed), timeout=300)
        outputs.append([(out / name).read_bytes() for name in ("vocab.txt", "tokenizer.json")])
    assert outputs[0] == outputs[1] == outputs[2]
