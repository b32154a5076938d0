"""Preparation at corpus scale: chunked reading, parallel vocab counts, instances independent of data.num_proc,
the vectorised masking, and one builder per cache (a lock that holds across processes and nodes)."""
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import numpy as np
import pytest
import torch

from bert_pl.io import tokenization
from bert_pl.pretraining import cachelock, corpus, prepare
from bert_pl.pretraining.instances import build_pretraining_dataset
from bert_pl.pretraining.masking import MaskingCollator
from conftest import ROOT, shared

SETTINGS = dict(vocab_size=700, lowercase=True, min_frequency=1, limit_alphabet=1000, handle_chinese_chars=True,
                strip_accents=None)
# what a normaliser and a pre-tokeniser can trip on: control and separator characters (\x1c is whitespace to
# Python, not to Rust), final sigma, combining accents, CJK, full-width marks, no-break spaces, tabs
TRICKY = ["Ο ΔΡΟΜΟΣ.\tΣΟΦΙΑ ΣΟΦΟΣ!", "a\x1cb c\x1fd e\x0bf\x07g", "Café naïve résumé — “quoted” (e.g. this).",
          "東京は大きい。「行こう。」と言った。", "no\u00a0break\u2009thin\u3000wide", "x\u0301y\u0308 Ǆemal",
          "¿Qué? ¡Sí! 3.5% $10 #tag @user", "\u200bzero\ufeffwidth", "UPPER lower MiXeD 123abc 4.5e-3"]


def _tricky_corpus(path, n_docs=30, seed=0):
    rng = random.Random(seed)
    words = "the cat sat on a mat while dogs ran under tables near rivers".split()
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(n_docs):
            for _ in range(rng.randint(2, 8)):
                f.write(" ".join(rng.choice(words + TRICKY) for _ in range(rng.randint(3, 15))) + ".\n")
            f.write("\n")
    return path


def _sources(tmp_path):
    tricky = _tricky_corpus(tmp_path / "tricky.txt")
    return {
        "google": {"format": "google", "paths": [str(shared("corpus", "sample_text.txt")), str(tricky)]},
        "plain-rule": {"format": "plain", "paths": [str(tricky)], "doc_split": "block", "sentence_splitter": "rule"},
        "plain-line": {"format": "plain", "paths": [str(tricky)], "doc_split": "block", "sentence_splitter": "line"},
        "state_union": {"format": "plain", "paths": [str(shared("corpus", "state_union"))], "doc_split": "file",
                        "sentence_splitter": "rule", "encoding_errors": "replace"},
    }


def test_vocab_from_chunked_counts_is_tokenization_train_byte_for_byte(tmp_path, monkeypatch):
    """The vocab trained from words counted chunk by chunk (pieces of normalised text, split once per distinct
    piece) is the one `tokenization.train` makes from every sentence, byte for byte."""
    monkeypatch.setattr(prepare, "CHUNK_BYTES", 4096)  # many chunks, cut inside files
    for name, source in _sources(tmp_path).items():
        expected = tokenization.train((s for doc in corpus.documents(source) for s in doc), **SETTINGS)
        got = prepare.train_vocab(source, SETTINGS)
        assert got.to_str() == expected.to_str(), name
    every_ascii = "".join(map(chr, range(128))) + " Ab\x0bC\x1cD\x7fE\tF"
    for lowercase in (True, False):  # the ASCII shortcut normalises as the normaliser does
        normalize = prepare._pipeline(dict(SETTINGS, lowercase=lowercase)).normalizer.normalize_str
        assert prepare.count_pieces([every_ascii, "naïve ÀB"], normalize, lowercase) == Counter(
            normalize(every_ascii + " naïve ÀB").split())
    cased = dict(SETTINGS, lowercase=False, strip_accents=False, handle_chinese_chars=False)
    source = _sources(tmp_path)["plain-rule"]
    assert prepare.train_vocab(source, cased).to_str() == tokenization.train(
        (s for doc in corpus.documents(source) for s in doc), **cased).to_str()


def test_vocab_and_instances_do_not_depend_on_data_num_proc(tmp_path, minilm_tokenizer, monkeypatch):
    """Two worker processes (fresh, spawned) give the same vocab and the same instances, row for row, as one."""
    monkeypatch.setattr(prepare, "CHUNK_BYTES", 3000)
    source = {"format": "plain", "paths": [str(shared("corpus", "state_union"))], "doc_split": "block",
              "sentence_splitter": "rule", "encoding_errors": "replace"}
    files = corpus._expand(source["paths"])[:6]
    source["paths"] = [str(f) for f in files]
    assert prepare.train_vocab(source, SETTINGS, 2).to_str() == prepare.train_vocab(source, SETTINGS, 1).to_str()
    one = build_pretraining_dataset(source, minilm_tokenizer, tmp_path / "one", max_seq_length=64, num_proc=1,
                                    val_fraction=0.1, docs_per_shard=20)
    two = build_pretraining_dataset(source, minilm_tokenizer, tmp_path / "two", max_seq_length=64, num_proc=2,
                                    val_fraction=0.1, docs_per_shard=20)
    for split in ("train", "validation"):
        assert len(one[split]) > (100 if split == "train" else 5)
        assert one[split]["input_ids"] == two[split]["input_ids"]
        assert one[split]["next_sentence_label"] == two[split]["next_sentence_label"]
    assert len(list((tmp_path / "two").glob("pretrain-*/train/part-*.arrow"))) > 3  # one file per chunk


@pytest.mark.parametrize("kind", ["google", "plain-block", "plain-file"])
def test_chunks_read_the_documents_of_the_whole_file(tmp_path, kind):
    """A file cut into chunks (after a blank line; between files with doc_split=file) reads the same documents, in
    the same order, as reading it from the start; blank-line runs, whitespace-only lines and a missing final
    newline included."""
    rng = random.Random(1)
    folder = tmp_path / "c"
    folder.mkdir()
    for i in range(4):
        blocks = ["\n".join(f"Doc {i}.{d} line {k}. More text here? Yes!" for k in range(rng.randint(1, 6)))
                  for d in range(rng.randint(5, 15))]
        text = "".join(b + rng.choice(["\n\n", "\n\n\n", "\n \t\n", "\n\u00a0\n"]) for b in blocks)
        (folder / f"{i}.txt").write_text(text.rstrip("\n") if i == 3 else text, encoding="utf-8")
    fmt, split = {"google": ("google", None), "plain-block": ("plain", "block"), "plain-file": ("plain", "file")}[kind]
    source = {"format": fmt, "paths": [str(folder)], "sentence_splitter": "rule", **({"doc_split": split} if split
                                                                                        else {})}
    expected = list(corpus.documents(source))
    for chunk in (50, 300, 10 ** 6):
        tasks = prepare.plan(source, chunk)
        got = [doc for t in tasks for doc in prepare.chunk_documents(source, t)]
        assert got == expected, chunk
    assert len(prepare.plan(source, 50)) == 4 if kind == "plain-file" else len(prepare.plan(source, 50)) > 10


def test_invalid_utf8_in_a_later_chunk_names_the_line_of_the_file(tmp_path):
    path = tmp_path / "bad.txt"
    good = "".join(f"line {i}.\n\n" for i in range(200))
    path.write_bytes(good.encode() + b"caf\xe9\n")
    source = {"format": "google", "paths": [str(path)]}
    with pytest.raises(corpus.CorpusError) as whole:
        list(corpus.documents(source))
    tasks = prepare.plan(source, 100)
    with pytest.raises(corpus.CorpusError) as chunked:
        for t in tasks:
            prepare.chunk_documents(source, t)
    assert str(chunked.value) == str(whole.value) and f"{path}:401: invalid UTF-8" in str(whole.value)


def _reference_mask_one(coll, ids, rng):
    """The masking before it was vectorised (the loop over a permutation of words, Google's), as the reference."""
    cand = np.flatnonzero(~coll.special[ids])
    num_to_predict = min(coll.max_predictions_per_seq, max(1, int(round(len(ids) * coll.masked_lm_prob))))
    if coll.whole_word_masking:
        starts = ~coll.continuation[ids[cand]]
        starts[0] = True
        groups = np.split(cand, np.flatnonzero(starts)[1:])
    else:
        groups = [cand[i:i + 1] for i in range(len(cand))]
    chosen = []
    for g in rng.permutation(len(groups)):
        if len(chosen) >= num_to_predict:
            break
        if len(chosen) + len(groups[g]) > num_to_predict:
            continue
        chosen.extend(groups[g].tolist())
    positions = np.sort(np.asarray(chosen, dtype=np.int64))
    labels = ids[positions].astype(np.int64)
    masked = ids.copy()
    r = rng.random(len(positions))
    masked[positions[r < 0.8]] = coll.mask_id
    rand_pos = positions[r >= 0.9]
    masked[rand_pos] = rng.integers(0, coll.vocab_size, len(rand_pos))
    return masked, positions, labels


@pytest.mark.parametrize("wwm", [False, True])
def test_vectorised_masking_makes_the_same_draws_as_the_word_loop(minilm_tokenizer, wwm):
    vocab = minilm_tokenizer.get_vocab()
    coll = MaskingCollator(vocab, max_predictions_per_seq=20, whole_word_masking=wwm, seed=0)
    text = "unaffable tokenization of hyperparameters in the riverbank, quickly! " * 8
    ids_all = np.asarray(minilm_tokenizer.encode(text).ids)
    for i in range(200):
        ids = ids_all[: 8 + (i * 7) % (len(ids_all) - 8)]
        got = coll.mask_one(ids, np.random.default_rng([3, 1, i]))
        ref = _reference_mask_one(coll, ids, np.random.default_rng([3, 1, i]))
        for a, b in zip(got, ref):
            assert np.array_equal(a, b), i


# -- one builder per cache -----------------------------------------------------------------------------------
def test_a_lock_held_by_a_live_process_times_out_naming_it(tmp_path):
    lock = tmp_path / ".pretrain-x.lock"
    stop = threading.Event()

    def live_holder():  # another host's process: its heartbeat keeps changing the file
        beat = 0
        while not stop.is_set():
            lock.write_text(f"host=node7 pid=4242 beat={beat}\n")
            beat += 1
            time.sleep(0.05)

    lock.write_text("host=node7 pid=4242 beat=0\n")
    t = threading.Thread(target=live_holder, daemon=True)
    t.start()
    try:
        with pytest.raises(cachelock.CacheLockTimeout, match=r"waited \d+ s for node7 pid 4242 to finish building the "
                                                             r"cache X \(lock file .*\.pretrain-x\.lock\).*"
                                                             r"data.lock_timeout"):
            with cachelock.cache_lock(lock, "the cache X", timeout=0.6, stale_after=0.4, poll=0.05):
                pass
    finally:
        stop.set()
        t.join()


def test_a_stale_lock_is_taken_over_and_a_ready_cache_ends_the_wait(tmp_path, caplog):
    lock = tmp_path / ".l.lock"
    lock.write_text("host=gone pid=1 beat=3\n")  # its holder died: the file no longer changes
    with caplog.at_level(logging.INFO, logger="bert_pl"):
        with cachelock.cache_lock(lock, "the cache Y", stale_after=0.3, poll=0.05, beat=0.05) as holder:
            assert holder is True
            text = lock.read_text()
            assert text.startswith(f"host={socket.gethostname()} pid={os.getpid()} ")
            time.sleep(0.2)
            assert lock.read_text() != text  # the heartbeat
    assert not lock.exists()
    assert "waiting for gone pid 1, which builds the cache Y" in caplog.text
    assert "has not changed for 0 s; taking it over" in caplog.text

    lock.write_text("host=busy pid=2 beat=0\n")
    done = tmp_path / "done"
    threading.Timer(0.2, done.touch).start()
    with cachelock.cache_lock(lock, "the cache Z", stale_after=60, poll=0.05, ready=done.exists) as holder:
        assert holder is False  # built by the other: nothing to do
    assert lock.exists()  # not ours to remove


def test_two_builders_of_one_new_cache_build_it_once(tmp_path, minilm_tokenizer, caplog):
    """Two builders at once on the same new cache (threads here; train.py processes in the slow test below): one
    builds, the other waits for it and opens the same files."""
    source = {"format": "google", "paths": [str(shared("corpus", "sample_text.txt"))]}
    results, errors = {}, []

    def build(name):
        try:
            results[name] = build_pretraining_dataset(source, minilm_tokenizer, tmp_path, max_seq_length=64,
                                                      dupe_factor=5)
        except Exception as e:  # noqa: BLE001  (reported by the assertion below)
            errors.append(e)

    with caplog.at_level(logging.INFO, logger="bert_pl"):
        threads = [threading.Thread(target=build, args=(n,)) for n in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    assert caplog.text.count("building pretraining instances from") == 1
    assert results["a"]["train"]["input_ids"] == results["b"]["train"]["input_ids"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no lock or temporary left


# -- processes and nodes (slow: each starts train.py) -----------------------------------------------------------
def _text_corpus(path):
    rng = random.Random(0)
    sentences = [line.strip() for line in shared("corpus", "sample_text.txt").read_text().splitlines() if line.strip()]
    path.write_text("\n\n".join("\n".join(" ".join(rng.choices(sentences, k=rng.randint(1, 4)))
                                          for _ in range(rng.randint(3, 9))) for _ in range(120)) + "\n")
    return path


def _train_cmd(corpus_path, cache, run, *extra):
    return [sys.executable, "train.py", "data=text", f"data.source.paths=[{corpus_path}]", "data.source.doc_split=block",
            "data.dupe_factor=1", "data.num_proc=2", "data.batch_size=8", "data.num_workers=0",
            "data.tokenizer.vocab_size=600", "trainer.max_steps=3", "trainer.val_check_interval=1000",
            "callbacks.last_checkpoint.every_n_train_steps=3", "logger=csv", "model.hidden_dropout_prob=0.1",
            f"paths.cache_dir={cache}", f"hydra.run.dir={run}", *extra]


def _weights(run):
    return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_two_train_py_on_one_new_cache_build_it_once_and_train_on_the_same_instances(tmp_path):
    text = _text_corpus(tmp_path / "text.txt")
    procs = [subprocess.Popen(_train_cmd(text, tmp_path / "cache", tmp_path / f"run{i}"), cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for i in (0, 1)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    both = outs[0] + outs[1]
    assert both.count("training a 600-word WordPiece vocab") == 1, both[-4000:]
    assert both.count("building pretraining instances from") == 1, both[-4000:]
    assert len(list((tmp_path / "cache").glob("pretrain-*"))) == 1
    assert _same(_weights(tmp_path / "run0"), _weights(tmp_path / "run1"))  # same instances, masks and steps


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_on_localhost_train_as_one_node_with_two_processes(tmp_path):
    """trainer.num_nodes=2 (one process per node, NODE_RANK 0 and 1, MASTER_ADDR=127.0.0.1) on one new cache:
    both nodes' rank 0 prepare it, one builds and the other waits; the weights equal a 2-process single-node run's."""
    text = _text_corpus(tmp_path / "text.txt")
    # one thread per process in both layouts (a "node" alone would take every core: other summation orders)
    base = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK")}
    base["OMP_NUM_THREADS"] = "1"

    def cmd(cache, run, *extra):
        (tmp_path / f"samples_{run}").mkdir()
        return _train_cmd(text, tmp_path / cache, tmp_path / run, "accelerator=cpu", "strategy=ddp",
                          "+callbacks.samples._target_=tests.helpers.RecordRankSamples",
                          f"+callbacks.samples.output_dir={tmp_path / f'samples_{run}'}", *extra)

    single = subprocess.run(cmd("cache1", "single", "trainer.devices=2"), cwd=ROOT, capture_output=True, text=True,
                            timeout=600, env=base)
    assert single.returncode == 0, single.stderr[-3000:]
    port = _free_port()
    procs = [subprocess.Popen(cmd("cache2", f"node{node}", "trainer.devices=1", "trainer.num_nodes=2"), cwd=ROOT,
                              env=dict(base, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), NODE_RANK=str(node)),
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for node in (0, 1)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    assert (outs[0] + outs[1]).count("building pretraining instances from") == 1
    for rank, node in ((0, "node0"), (1, "node1")):  # each global rank reads the same samples in both layouts
        one = (tmp_path / "samples_single" / f"samples_rank{rank}.json").read_text()
        assert (tmp_path / f"samples_{node}" / f"samples_rank{rank}.json").read_text() == one
    assert _same(_weights(tmp_path / "node0"), _weights(tmp_path / "single"))
