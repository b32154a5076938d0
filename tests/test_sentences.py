"""Sentence splitting for free text in any script, and what it means for NSP pairs (issue "Pretraining that pays",
text that is not Latin). The samples are plain sentences in Chinese, Japanese, Russian and Arabic, one per line in
tests/data/multilingual/; the tests glue them into paragraphs (without spaces for Chinese and Japanese, as those
scripts are written) so the splitter has to find every boundary again."""
import logging
import random
from pathlib import Path

import pytest

from bert_pl.io import tokenization
from bert_pl.pretraining.corpus import plain_documents
from bert_pl.pretraining.instances import build_pretraining_dataset
from bert_pl.pretraining.sentences import SentenceSplitterError, get_splitter, split_rule

SAMPLES = Path(__file__).parent / "data" / "multilingual"
JOINER = {"zh": "", "ja": "", "ru": " ", "ar": " "}
ENDS = set(".!?。！？؟」")


def sentences(lang):
    return [s for s in (SAMPLES / f"{lang}.txt").read_text(encoding="utf-8").splitlines() if s]


def write_corpus(folder: Path, lang: str, n_docs: int = 40, seed: int = 0):
    """n_docs files, each one paragraph of 4-10 sentences on one line; returns the documents as sentence lists."""
    rng = random.Random(seed)
    pool = sentences(lang)
    folder.mkdir(parents=True)
    docs = []
    for i in range(n_docs):
        doc = rng.sample(pool, rng.randint(4, 10))
        (folder / f"doc{i:03d}.txt").write_text(JOINER[lang].join(doc) + "\n", encoding="utf-8")
        docs.append(doc)
    return docs


def test_rule_on_latin_text():
    assert split_rule("It rained. Then it stopped! Did it? Yes.") == ["It rained.", "Then it stopped!", "Did it?", "Yes."]
    assert split_rule("Mr. smith arrived at 3.5 p.m. today, e.g. late.") == [
        "Mr. smith arrived at 3.5 p.m. today, e.g. late."]
    assert split_rule("Mr. Smith met J. R. R. Tolkien. He said \"Go.\" Then he left.") == [
        "Mr. Smith met J. R. R. Tolkien.", "He said \"Go.\"", "Then he left."]
    # not ends: what follows is not an upper-case letter or digit, or the full stop closes a title
    for whole in ["Apples, pears, etc. (see the list) are fruit.", "He left at 5 p.m. — but came back later.",
                  "It costs 10 USD, i.e. $10.", "I love it! :) You?", 'Stop. "and then what?" she asked.',
                  "Ask Dr. Who and St. Paul.", "Is it; Then"]:
        assert split_rule(whole) == [whole]
    # ends: sentences that end on a one-letter word or an abbreviation that also ends sentences
    assert split_rule("So am I. We agree. Plan A. Plan B.") == ["So am I.", "We agree.", "Plan A.", "Plan B."]
    assert split_rule("He moved to the U.S. In 1990 he returned.") == ["He moved to the U.S.", "In 1990 he returned."]
    assert split_rule("Τι κάνεις; Καλά.") == ["Τι κάνεις;", "Καλά."]  # the Greek question mark (NFC: ;)
    assert split_rule("３．５倍になった。次へ。") == ["３．５倍になった。", "次へ。"]


def test_rule_is_linear_in_runs_of_marks():
    import time

    start = time.perf_counter()
    for n in (1_000, 100_000):
        assert split_rule("a" + "." * n + "b") == ["a" + "." * n + "b"]
        assert len(split_rule("!" * n + ")" * 10 + " A")) == 2
    assert time.perf_counter() - start < 1.0  # quadratic before: 100k dots took about two minutes


@pytest.mark.parametrize("lang", sorted(JOINER))
def test_rule_finds_every_sentence_boundary(tmp_path, lang):
    docs = write_corpus(tmp_path / lang, lang)
    assert list(plain_documents(tmp_path / lang, splitter="rule")) == docs


def test_rule_on_quotes():
    assert split_rule("「行こう。」と彼は言った。「はい。」「いいえ。」") == ["「行こう。」と彼は言った。", "「はい。」", "「いいえ。」"]
    assert split_rule("老师说：“明天要考试。”天黑了。") == ["老师说：“明天要考试。”", "天黑了。"]


@pytest.mark.parametrize("lang", sorted(JOINER))
def test_pairs_are_built_at_sentence_boundaries_with_half_random_next(tmp_path, lang, caplog):
    """Before: no sentence end was found in these scripts, every document was one segment, and Google's algorithm
    makes a one-segment chunk random-next every time (NSP rate ~100%, nothing learnable)."""
    docs = write_corpus(tmp_path / lang, lang, n_docs=60)
    tok = tokenization.train((s for d in docs for s in d), vocab_size=600, min_frequency=1, limit_alphabet=3000)
    source = {"format": "plain", "paths": [str(tmp_path / lang)], "sentence_splitter": "rule"}
    with caplog.at_level(logging.WARNING):
        ds = build_pretraining_dataset(source, tok, tmp_path / "cache", max_seq_length=128, dupe_factor=5)
    assert "single segment" not in caplog.text
    train = ds["train"]
    random_next = sum(train["next_sentence_label"]) / len(train)
    assert len(train) > 150 and 0.4 < random_next < 0.65, (len(train), random_next)
    sep = tok.token_to_id("[SEP]")
    a_ends = [tok.id_to_token(ids[ids.index(sep) - 1]) for ids in train["input_ids"]]
    assert sum(t in ENDS for t in a_ends) / len(a_ends) > 0.9  # segment A ends where a sentence ends

    # the same text with every document on one unsplit line: one segment each, warned about, NSP degenerate
    source = {"format": "plain", "paths": [str(tmp_path / lang)], "sentence_splitter": "line"}
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        unsplit = build_pretraining_dataset(source, tok, tmp_path / "cache2", max_seq_length=128, dupe_factor=5)
    labels = unsplit["train"]["next_sentence_label"]
    assert sum(labels) / len(labels) > 0.9
    if lang in ("ru", "ar"):  # the CJK paragraphs are shorter than the 200 characters the warning starts at
        assert "of 60 documents became a single segment" in caplog.text, caplog.text


def test_a_script_without_sentence_marks_is_warned_about(tmp_path, caplog):
    thai = "สวัสดีครับ วันนี้อากาศดีมาก เราจะไปเที่ยวทะเลกัน " * 20
    for i in range(3):
        (tmp_path / f"{i}.txt").write_text(thai + "\n", encoding="utf-8")
    (tmp_path / "en.txt").write_text("One sentence. Another one.\n")
    from bert_pl.pretraining.corpus import documents

    with caplog.at_level(logging.WARNING):
        docs = list(documents({"format": "plain", "paths": [str(tmp_path)], "sentence_splitter": "rule"}))
    assert len(docs) == 4
    assert "3 of 4 documents became a single segment" in caplog.text
    assert "data.sentence_splitter=pysbd" in caplog.text


def test_library_and_custom_splitters():
    pysbd = pytest.importorskip("pysbd", reason="pysbd is in requirements-test.txt")
    assert pysbd is not None
    assert get_splitter("pysbd:ja")("「行こう。」と彼は言った。雨が降っていた！") == ["「行こう。」と彼は言った。", "雨が降っていた！"]
    assert get_splitter("pysbd")("Dr. Smith arrived. He sat down.") == ["Dr. Smith arrived.", "He sat down."]
    assert get_splitter("line")("a b\n\nc d. e\n") == ["a b", "c d. e"]
    assert get_splitter("tests.test_sentences:_by_semicolon")("a; b") == ["a", "b"]
    with pytest.raises(SentenceSplitterError, match="use one of rule, line, pysbd, blingfire"):
        get_splitter("nltk")
    with pytest.raises(SentenceSplitterError, match="pysbd:xx"):
        get_splitter("pysbd:xx")
    with pytest.raises(SentenceSplitterError, match="cannot import"):
        get_splitter("no_such_module:split")


def test_blingfire_when_installed():
    pytest.importorskip("blingfire", reason="optional (pip install blingfire, 42 MB): data.sentence_splitter=blingfire")
    assert get_splitter("blingfire")("Москва — столица России. Это большой город!") == [
        "Москва — столица России.", "Это большой город!"]


def _by_semicolon(text):
    return [s.strip() for s in text.split(";")]


def test_the_config_keys_reach_the_corpus_and_the_vocab(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    docs = write_corpus(tmp_path / "ja", "ja", n_docs=10)
    overrides = ["data=text", f"data.source.paths=[{tmp_path / 'ja'}]", f"data.cache_dir={tmp_path / 'cache'}",
                 "data.sentence_splitter=rule", "data.tokenizer.vocab_size=400", "data.tokenizer.min_frequency=1",
                 "data.tokenizer.limit_alphabet=2000", "data.tokenizer.strip_accents=false", "data.val_fraction=0"]
    with initialize_config_dir(config_dir=str(Path(__file__).parent.parent / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    dm = instantiate(cfg.data)
    assert dm.source["sentence_splitter"] == "rule"
    tok = dm.load_tokenizer()
    vocab = tok.get_vocab()
    assert "が" in vocab  # kept whole: strip_accents=false does not split off the voiced mark
    assert len({c for d in docs for s in d for c in s} - set(vocab)) < 5  # limit_alphabet kept the characters
    from bert_pl.pretraining.datamodule import PretrainingDataModule

    with pytest.raises(SentenceSplitterError, match="data.sentence_splitter='spacy': use one of"):
        PretrainingDataModule(source=dict(cfg.data.source), sentence_splitter="spacy")
