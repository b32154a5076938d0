"""Messages that must not mislead: symlink loops and broken links named as such, a hub name offline, a damaged
pretraining cache, a vocab larger than the checkpoint's embeddings."""
import os

import pytest

from bert_pl.errors import UserError
from bert_pl.io.missing import why_missing


@pytest.fixture
def loop(tmp_path):
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    return tmp_path / "a"


def test_why_a_path_is_missing(tmp_path, loop):
    os.symlink(tmp_path / "nothere", tmp_path / "broken")
    assert why_missing(tmp_path / "nothere") == "does not exist"
    assert why_missing(loop).startswith(f"is a symlink loop ({loop}")
    assert why_missing(loop / "MRPC").startswith(f"is a symlink loop ({loop}")  # a parent folder is the loop
    assert why_missing(tmp_path / "broken" / "x") == \
        f"is a broken symlink ({tmp_path / 'broken'} -> {tmp_path / 'nothere'}, which does not exist)"


def test_a_symlink_loop_is_named_by_every_loader(loop):
    from bert_pl.io.checkpoints import resolve
    from bert_pl.pretraining.corpus import google_documents
    from bert_pl.tasks.glue import GlueDataModule

    with pytest.raises(UserError, match=f"pretrained={loop} is a symlink loop"):
        resolve(str(loop))
    with pytest.raises(UserError, match=f"corpus path {loop} is a symlink loop"):
        list(google_documents([str(loop)]))
    from bert_pl.pretraining.corpus import hub_documents

    with pytest.raises(UserError, match=f"data.source.name={loop} is a symlink loop"):
        next(hub_documents(str(loop)))
    from bert_pl.tasks.readers import read_rows
    from bert_pl.tasks.squad import read_json
    from bert_pl.tasks.token_classification import read_conll

    # Path.resolve() raises RuntimeError on a loop: these said "not found (looked in ...)" with a traceback
    with pytest.raises(UserError, match=f"data file {loop / 'train.tsv'} is a symlink loop"):
        read_rows(loop / "train.tsv")
    with pytest.raises(UserError, match=f"data file {loop / 'eng.train'} is a symlink loop"):
        read_conll(loop / "eng.train")
    with pytest.raises(UserError, match=f"SQuAD file {loop / 'dev-v1.1.json'} is a symlink loop"):
        read_json(loop / "dev-v1.1.json")
    with pytest.raises(UserError, match=f"{loop / 'MRPC'} is a symlink loop"):
        GlueDataModule("mrpc", data_dir=str(loop)).read("train")  # the hub is offline in tests (conftest)


@pytest.mark.parametrize("name", ["bert-base-uncased", "google-bert/bert-base-uncased"])
def test_a_hub_name_offline_says_the_hub_is_offline_and_what_to_pass(name, monkeypatch, tmp_path):
    from bert_pl.io.checkpoints import resolve

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(UserError, match=f"pretrained='{name}' is no local file or folder, so it must come from the "
                                        f"Hugging Face hub, which is not reachable.*pass pretrained=/path/to/a/local"):
        resolve(name)


def test_a_damaged_pretraining_cache_names_the_file_and_the_folder_to_delete(tmp_path, minilm_tokenizer):
    from bert_pl.pretraining.instances import build_pretraining_dataset

    source = {"format": "embedded", "max_chars": 20000}
    build_pretraining_dataset(source, minilm_tokenizer, tmp_path, max_seq_length=64)
    (arrow,) = tmp_path.glob("pretrain-*/train/*.arrow")
    with open(arrow, "r+b") as f:
        f.truncate(arrow.stat().st_size // 2)
    with pytest.raises(UserError, match=f"the pretraining cache file {arrow} is damaged .*delete the cache folder "
                                        f"{arrow.parent.parent} and run again"):
        build_pretraining_dataset(source, minilm_tokenizer, tmp_path, max_seq_length=64)


def test_a_vocab_larger_than_the_checkpoints_embeddings_is_refused_before_anything_is_built(tiny_pretrained):
    from bert_pl.errors import UserConfigError
    from bert_pl.training.checks import model_dict

    with pytest.raises(UserConfigError, match=r"the tokenizer has 40000 tokens but .*\.ckpt has embeddings for "
                                              r"30522; leave data.tokenizer.path unset"):
        model_dict(None, 40000, str(tiny_pretrained))
    assert model_dict(None, 30522, str(tiny_pretrained))["vocab_size"] == 30522


def test_a_damaged_tokenizer_json_is_named_given_or_cached(tmp_path):
    from bert_pl.io import tokenization
    from bert_pl.pretraining.datamodule import PretrainingDataModule

    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"version": "1.0", "trunc')
    with pytest.raises(UserError, match=f"{bad}: not a readable tokenizer.json .*re-create it, or pass a vocab.txt"):
        tokenization.load(bad)
    source = {"format": "embedded", "max_chars": 20000}
    dm = PretrainingDataModule(source, {"vocab_size": 200}, cache_dir=str(tmp_path / "cache"))
    dm.load_tokenizer()
    (cached,) = (tmp_path / "cache").glob("tokenizer-*/tokenizer.json")
    cached.write_text(cached.read_text()[:500])
    with pytest.raises(UserError, match=f"the cached vocab {cached} is damaged; delete the cache folder "
                                        f"{cached.parent} and run again"):
        PretrainingDataModule(source, {"vocab_size": 200}, cache_dir=str(tmp_path / "cache")).load_tokenizer()


def test_extract_features_checks_max_seq_length_by_the_one_rule(tiny_pretrained, tmp_path):
    """--max_seq_length follows BertConfig.check_max_seq_length (at least 8, at most the model's positions), in one
    line naming the option."""
    from bert_pl.cli.extract_features import main

    (tmp_path / "in.txt").write_text("hello world\n")
    for value, message in (("4", "--max_seq_length=4: must be a whole number of at least 8"),
                           ("1000", "--max_seq_length=1000 exceeds the model's max_position_embeddings=512")):
        with pytest.raises(SystemExit) as stop:
            main(["--pretrained", str(tiny_pretrained), "--input_file", str(tmp_path / "in.txt"),
                  "--output_file", str(tmp_path / "out.jsonl"), "--layers=-1", "--max_seq_length", value])
        assert str(stop.value.code).startswith(f"error: {message}"), stop.value.code
    assert not (tmp_path / "out.jsonl").exists()
