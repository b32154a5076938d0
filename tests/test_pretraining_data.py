import random
import re
from collections import Counter

import numpy as np
import pytest

from bert_pl.pretraining.corpus import CorpusError, google_documents, plain_documents, split_sentences
from bert_pl.pretraining.instances import build_pretraining_dataset, create_instances_from_document, truncate_seq_pair
from bert_pl.pretraining.masking import MaskingCollator
from conftest import shared


@pytest.fixture(scope="module")
def collator_vocab(minilm_tokenizer):
    return minilm_tokenizer.get_vocab()


def random_docs(n_docs=40, seed=0):
    rng = random.Random(seed)
    return [[[rng.randint(10, 999) for _ in range(rng.randint(3, 30))] for _ in range(rng.randint(1, 12))]
            for _ in range(n_docs)]


def test_nsp_pairing_statistics_and_lengths():
    docs = random_docs(200)
    rng = random.Random(1)
    instances = [i for d in range(len(docs)) for i in create_instances_from_document(docs, d, 64, 0.1, rng)]
    assert len(instances) > 300
    frac_random = sum(r for _, _, r in instances) / len(instances)
    # single-segment chunks are always random-next, so the rate sits a little above 50%
    assert 0.45 < frac_random < 0.65
    for a, b, _ in instances:
        assert len(a) >= 1 and len(b) >= 1
        assert len(a) + len(b) <= 64 - 3


def test_actual_next_segments_are_contiguous_text():
    # document made of consecutive integers: a true "next" B must continue A exactly (up to truncation)
    doc = [list(range(s, s + 5)) for s in range(0, 200, 5)]
    docs = [doc, [[9000 + i] for i in range(30)]]
    rng = random.Random(0)
    for a, b, is_random in create_instances_from_document(docs, 0, 40, 0.0, rng):
        if not is_random:
            assert b[0] > a[-1]  # B comes after A in the document
        else:
            assert all(t >= 9000 for t in b)  # B is from the other document


def test_short_seq_prob_gives_shorter_targets():
    docs = random_docs(200, seed=3)
    lengths = {}
    for p in (0.0, 0.5):
        rng = random.Random(0)
        inst = [i for d in range(len(docs)) for i in create_instances_from_document(docs, d, 128, p, rng)]
        lengths[p] = np.mean([len(a) + len(b) for a, b, _ in inst])
    assert lengths[0.5] < lengths[0.0]


def test_truncation_removes_from_both_ends():
    rng = random.Random(0)
    fronts = backs = 0
    for _ in range(200):
        a, b = list(range(10)), [100]
        truncate_seq_pair(a, b, 10, rng)
        assert len(a) + len(b) == 10 and b == [100]
        fronts += a[0] != 0
        backs += a[-1] != 9
    assert fronts > 50 and backs > 50


def test_nsp_off_gives_contiguous_segments():
    docs = random_docs(30)
    rng = random.Random(0)
    for d in range(len(docs)):
        for _, _, is_random in create_instances_from_document(docs, d, 64, 0.1, rng, nsp=False):
            assert not is_random


def test_masking_statistics(collator_vocab):
    coll = MaskingCollator(collator_vocab, masked_lm_prob=0.15, max_predictions_per_seq=200, seed=0)
    vocab_size = len(collator_vocab)
    cls, sep, mask = collator_vocab["[CLS]"], collator_vocab["[SEP]"], collator_vocab["[MASK]"]
    rng = np.random.default_rng(0)
    kinds = Counter()
    n_tokens = n_masked = 0
    for i in range(400):
        body = rng.integers(1000, vocab_size, 100)
        ids = np.concatenate([[cls], body[:60], [sep], body[60:], [sep]])
        masked, pos, labels = coll.mask_one(ids, np.random.default_rng([0, 0, i]))
        assert np.array_equal(labels, ids[pos])  # labels are the original tokens
        assert not np.isin(pos, np.flatnonzero((ids == cls) | (ids == sep))).any()  # specials never masked
        n_tokens += len(ids)
        n_masked += len(pos)
        for p in pos:
            kinds["mask" if masked[p] == mask else "keep" if masked[p] == ids[p] else "random"] += 1
        untouched = np.setdiff1d(np.arange(len(ids)), pos)
        assert np.array_equal(masked[untouched], ids[untouched])
    assert abs(n_masked / n_tokens - 0.15) < 0.01
    total = sum(kinds.values())
    assert abs(kinds["mask"] / total - 0.8) < 0.02
    assert abs(kinds["random"] / total - 0.1) < 0.02
    assert abs(kinds["keep"] / total - 0.1) < 0.02 + 1 / 30  # random draws can hit the original token


def test_max_predictions_cap_and_whole_word(minilm_tokenizer, collator_vocab):
    enc = minilm_tokenizer.encode("unaffable tokenization of hyperparameters " * 6)
    ids = np.asarray(enc.ids)
    coll = MaskingCollator(collator_vocab, max_predictions_per_seq=5, whole_word_masking=True, seed=0)
    cont = np.array([t.startswith("##") for t in enc.tokens])
    for i in range(50):
        _, pos, _ = coll.mask_one(ids, np.random.default_rng([1, 0, i]))
        assert 1 <= len(pos) <= 5
        chosen = set(pos.tolist())
        for p in pos:  # a continuation piece is masked only with its whole word
            j = p
            while cont[j]:
                j -= 1
                assert j in chosen
            k = p + 1
            while k < len(ids) and cont[k]:
                assert k in chosen
                k += 1


def test_collator_batch_dynamic_and_static(collator_vocab):
    coll = MaskingCollator(collator_vocab, seed=0, max_seq_length=32)
    cls, sep = collator_vocab["[CLS]"], collator_vocab["[SEP]"]
    examples = [{"input_ids": [cls, 2000, 2001, sep, 2002, 2003, 2004, sep], "next_sentence_label": 1,
                 "index": 7, "epoch": 0},
                {"input_ids": [cls, 2005, 2006, 2007, sep], "next_sentence_label": 0, "index": 8, "epoch": 0}]
    b = coll(examples)
    assert b["input_ids"].shape == (2, 8)
    assert b["token_type_ids"][0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert b["token_type_ids"][1].tolist() == [0] * 8
    assert b["attention_mask"][1].tolist() == [1] * 5 + [0] * 3
    assert b["mlm_positions"].shape == b["mlm_labels"].shape
    again = coll(examples)
    assert all((again[k] == b[k]).all() for k in b)  # same (seed, epoch, index): same masks
    different = [coll([dict(e, epoch=ep) for e in examples])["mlm_positions"] for ep in range(1, 12)]
    assert any(not (d.shape == b["mlm_positions"].shape and (d == b["mlm_positions"]).all()) for d in different)
    static = MaskingCollator(collator_vocab, seed=0, dynamic=False, max_seq_length=32, static_shapes=True)
    s1, s2 = static(examples), static([dict(e, epoch=5) for e in examples])
    assert s1["input_ids"].shape == (2, 32) and s1["mlm_positions"].shape == (2, 20)
    assert (s1["input_ids"] == s2["input_ids"]).all()  # static masking ignores the epoch


def test_sentence_splitter():
    assert split_sentences("It rained. Then it stopped! Did it? Yes.") == ["It rained.", "Then it stopped!",
                                                                           "Did it?", "Yes."]
    assert split_sentences("Mr. smith arrived at 3.5 p.m. today.") == ["Mr. smith arrived at 3.5 p.m. today."]


def test_readers_on_shared_corpus():
    docs = list(google_documents(shared("corpus", "sample_text.txt")))
    assert len(docs) == 3 and all(len(d) > 1 for d in docs)
    one = shared("corpus", "state_union", "1945-Truman.txt")
    plain = list(plain_documents(one))
    assert len(plain) == 1 and len(plain[0]) > 50


def test_invalid_utf8_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good line\nbad \xff\xfe bytes\n")
    with pytest.raises(CorpusError, match=r"bad.txt:2: invalid UTF-8.*set data\.source\.encoding_errors=replace"):
        list(google_documents(bad))
    docs = list(google_documents(bad, encoding_errors="replace"))
    assert docs[0][1].startswith("bad ")


def test_missing_and_empty_corpus(tmp_path, minilm_tokenizer):
    with pytest.raises(CorpusError, match="does not exist"):
        list(google_documents(tmp_path / "nope.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(CorpusError, match="holds no text"):
        build_pretraining_dataset({"format": "google", "paths": [str(empty)]}, minilm_tokenizer, tmp_path / "c")
    assert not list((tmp_path / "c").glob("pretrain-*"))  # no half-built cache left behind


def test_build_dataset_is_cached_and_well_formed(tmp_path, minilm_tokenizer):
    src = {"format": "google", "paths": [str(shared("corpus", "sample_text.txt"))]}
    ds = build_pretraining_dataset(src, minilm_tokenizer, tmp_path, max_seq_length=64, dupe_factor=3)
    train = ds["train"]
    assert len(train) > 10
    cls, sep = minilm_tokenizer.token_to_id("[CLS]"), minilm_tokenizer.token_to_id("[SEP]")
    for row in train:
        ids = row["input_ids"]
        assert ids[0] == cls and ids[-1] == sep and len(ids) <= 64 and ids.count(sep) == 2
    labels = [r["next_sentence_label"] for r in train]
    assert 0 < sum(labels) < len(labels)
    caches = list(tmp_path.glob("pretrain-*"))
    assert len(caches) == 1
    stamp = (caches[0] / "dataset_dict.json").stat().st_mtime_ns
    again = build_pretraining_dataset(src, minilm_tokenizer, tmp_path, max_seq_length=64, dupe_factor=3)
    assert (caches[0] / "dataset_dict.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert again["train"]["input_ids"] == train["input_ids"]


def test_one_held_out_document_still_gives_both_nsp_classes(tmp_path, minilm_tokenizer):
    """With val_fraction holding out one document, random-next segments come from training documents, so
    validation NSP is about half random-next (before: all IsNext, and an untrained model scored NSP 1.0)."""
    rng = random.Random(0)
    words = "the a cat dog sat ran on under table house river quickly slowly big small".split()
    corpus = tmp_path / "docs.txt"
    corpus.write_text("\n\n".join("\n".join(" ".join(rng.choice(words) for _ in range(12)) + "."
                                             for _ in range(30)) for _ in range(20)) + "\n")
    src = {"format": "google", "paths": [str(corpus)]}
    ds = build_pretraining_dataset(src, minilm_tokenizer, tmp_path / "cache", max_seq_length=64, dupe_factor=10,
                                   val_fraction=0.05)
    labels = ds["validation"]["next_sentence_label"]
    assert len(labels) >= 60 and 0.25 < sum(labels) / len(labels) < 0.75
    single = tmp_path / "single.txt"  # one sentence per document: every pair is random-next
    single.write_text("\n\n".join(" ".join(rng.choice(words) for _ in range(40)) for _ in range(40)) + "\n")
    with pytest.raises(CorpusError, match="only one NSP class"):
        build_pretraining_dataset({"format": "google", "paths": [str(single)]}, minilm_tokenizer, tmp_path / "c2",
                                  max_seq_length=64, val_fraction=0.05)


def test_sampler_shards_ranks_disjointly_and_resumes():
    from bert_pl.training.sampling import ResumableSampler

    n = 103
    shards = []
    for rank in range(2):
        s = ResumableSampler(n, shuffle=True, seed=5, rank=rank, world_size=2, drop_last=True)
        s.set_epoch(3)
        shards.append([i for i, _ in s])
    assert not set(shards[0]) & set(shards[1]) and len(shards[0]) == len(shards[1]) == 51
    s = ResumableSampler(n, seed=5)
    s.set_epoch(1)
    full = list(s)
    s.start_at(40)
    assert list(s) == full[40:] and len(s) == n  # the skip applies once, the epoch length stays whole
    assert list(s) == full
    s.set_epoch(2)
    assert [i for i, _ in s] != [i for i, _ in full] and {e for _, e in s} == {2}


def _google_truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng):
    """Google's create_pretraining_data.py truncate_seq_pair, as published (the reference)."""
    while True:
        total_length = len(tokens_a) + len(tokens_b)
        if total_length <= max_num_tokens:
            break
        trunc_tokens = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        assert len(trunc_tokens) >= 1
        if rng.random() < 0.5:
            del trunc_tokens[0]
        else:
            trunc_tokens.pop()


def test_truncation_equals_googles_token_for_token_and_draw_for_draw():
    for seed in range(200):
        rng = random.Random(seed)
        a, b = list(range(rng.randint(1, 80))), list(range(1000, 1000 + rng.randint(1, 80)))
        limit = rng.randint(2, 100)
        ours, google = random.Random(seed + 1), random.Random(seed + 1)
        a1, b1, a2, b2 = list(a), list(b), list(a), list(b)
        truncate_seq_pair(a1, b1, limit, ours)
        _google_truncate_seq_pair(a2, b2, limit, google)
        assert (a1, b1) == (a2, b2) and ours.random() == google.random()


def test_a_long_single_line_document_builds_as_fast_as_a_normal_one(tmp_path, minilm_tokenizer):
    """A 1 MB document on one line (no sentence breaks) builds in about the time of 1 MB of ordinary lines and gives
    about as many instances: the line is cut into instance-sized pieces. Before, truncation was quadratic in the
    line's length (a 5 MB line: >10 min); then the line gave one instance and pairing re-read all of it each time it
    was drawn as a random next segment, quadratic beside a long document (`both`: one 1 MB document each). Empty
    documents are skipped."""
    import time

    words = ("token " * (2 ** 20 // 6)).strip()
    one_line, lines = tmp_path / "one_line.txt", tmp_path / "lines.txt"
    one_line.write_text("First document, normal.\nIt has two sentences.\n\n\n\n" + words + ".\nTail.\n\n\n")
    lines.write_text("First document, normal.\nIt has two sentences.\n\n" +
                     "\n".join(words[i:i + 300] + "." for i in range(0, len(words), 300)) + "\nTail.\n")
    sources = {"lines": {"format": "google", "paths": [str(lines)]},
               "one_line": {"format": "google", "paths": [str(one_line)]},
               "both": {"format": "plain", "paths": [str(lines), str(one_line)]}}
    seconds, sizes = {}, {}
    for name, source in sources.items():
        start = time.perf_counter()
        ds = build_pretraining_dataset(source, minilm_tokenizer, tmp_path / name, max_seq_length=64)
        seconds[name] = time.perf_counter() - start
        sizes[name] = len(ds["train"])
        assert max(len(r) for r in ds["train"]["input_ids"]) <= 64
    assert seconds["one_line"] < 3 * seconds["lines"] + 5, seconds
    assert seconds["both"] < 3 * (seconds["lines"] + seconds["one_line"]) + 5, seconds
    assert sizes["one_line"] > sizes["lines"] / 3, sizes  # the line's text is used, not one instance of it


def test_building_logs_progress_but_not_for_short_steps(tmp_path, minilm_tokenizer, caplog, monkeypatch):
    """A long build says how far it got every PROGRESS_EVERY seconds (MB of text, MB/s, time left); a short one
    logs only where it builds and what it made (with each step's MB/s per core)."""
    import logging

    from bert_pl.pretraining import corpus

    caplog.set_level(logging.INFO, logger="bert_pl")
    src = {"format": "google", "paths": [str(shared("corpus", "sample_text.txt"))]}
    build_pretraining_dataset(src, minilm_tokenizer, tmp_path / "quick", max_seq_length=64)
    assert [r.getMessage().split(" ")[:2] for r in caplog.records] == [["building", "pretraining"],
                                                                       ["pretraining", "instances:"]]
    caplog.clear()
    monkeypatch.setattr(corpus, "PROGRESS_EVERY", 0.0)  # as if every step took longer than that
    build_pretraining_dataset(src, minilm_tokenizer, tmp_path / "slow", max_seq_length=64)
    messages = [r.getMessage() for r in caplog.records]
    progress = r"building pretraining instances: [\d.]+ of [\d.]+ MB \(100%\), [\d.]+ MB/s, \d+ s left$"
    assert any(re.match(progress, m) for m in messages), messages
    summary = r"pretraining instances: \d+ train from 3 documents .* per core: reading [\d.]+ MB/s, tokenising "
    assert any(re.match(summary, m) for m in messages), messages


def _instances(collator_vocab, n=12, seed=0):
    """Pretraining instances of mixed lengths, as the dataset holds them ([CLS] A [SEP] B [SEP])."""
    rng = random.Random(seed)
    cls, sep = collator_vocab["[CLS]"], collator_vocab["[SEP]"]
    out = []
    for i in range(n):
        a = [rng.randint(2000, 20000) for _ in range(rng.randint(2, 20))]
        b = [rng.randint(2000, 20000) for _ in range(rng.randint(1, 30 if i % 3 else 6))]
        out.append({"input_ids": [cls, *a, sep, *b, sep], "next_sentence_label": rng.randint(0, 1),
                    "index": i, "epoch": 1})
    return out


def test_packing_puts_sequences_side_by_side_with_the_same_masks(collator_vocab):
    examples = _instances(collator_vocab)
    plain = MaskingCollator(collator_vocab, seed=3, max_seq_length=64)(examples)
    packed = MaskingCollator(collator_vocab, seed=3, max_seq_length=64, packing=True, max_sequences_per_pack=3)(
        examples)
    rows = packed["input_ids"].shape[0]
    assert rows < len(examples) and packed["input_ids"].shape[1] <= 64
    assert int((packed["sequence_ids"] > 0).sum()) == int(plain["attention_mask"].sum())  # every token, once
    assert int(packed["sequence_ids"].amax(1).sum()) == len(examples) and packed["sequence_ids"].amax() <= 3
    # every sequence appears whole: same masked ids, segments and NSP label, positions restarting at 0
    found = 0
    for r in range(rows):
        for j in range(1, int(packed["sequence_ids"][r].max()) + 1):
            span = (packed["sequence_ids"][r] == j).nonzero().squeeze(1)
            start = int(span[0])
            assert span.tolist() == list(range(start, start + len(span)))
            assert packed["position_ids"][r, span].tolist() == list(range(len(span)))
            assert int(packed["nsp_positions"][r, j - 1]) == start
            i = next(i for i, e in enumerate(examples) if len(e["input_ids"]) == len(span) and
                     (plain["input_ids"][i, :len(span)] == packed["input_ids"][r, span]).all())
            assert (plain["token_type_ids"][i, :len(span)] == packed["token_type_ids"][r, span]).all()
            assert int(packed["next_sentence_label"][r, j - 1]) == examples[i]["next_sentence_label"]
            found += 1
    assert found == len(examples)
    assert sorted(packed["mlm_labels"][packed["mlm_labels"] != -100].tolist()) == \
        sorted(plain["mlm_labels"][plain["mlm_labels"] != -100].tolist())
    with pytest.raises(Exception, match="dynamic shapes"):
        MaskingCollator(collator_vocab, max_seq_length=64, packing=True, static_shapes=True)


def test_packed_loss_and_gradients_equal_unpacked(collator_vocab):
    import torch

    from bert_pl.model.bert import BertConfig, BertForPreTraining

    examples = _instances(collator_vocab, n=10, seed=1)
    plain = MaskingCollator(collator_vocab, seed=0, max_seq_length=64)(examples)
    packed = MaskingCollator(collator_vocab, seed=0, max_seq_length=64, packing=True)(examples)
    assert packed["input_ids"].shape[0] < plain["input_ids"].shape[0]
    for unpad in (False, True):
        torch.manual_seed(0)
        model = BertForPreTraining(BertConfig(vocab_size=len(collator_vocab), hidden_size=64, num_hidden_layers=2,
                                              num_attention_heads=4, intermediate_size=128,
                                              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                              unpad=unpad))
        results = []
        for batch in (plain, packed):
            model.zero_grad()
            out = model(**batch)
            out["loss"].backward()
            results.append((out["mlm_loss"].item(), out["nsp_loss"].item(),
                            [p.grad.clone() for p in model.parameters()]))
        (mlm_a, nsp_a, grads_a), (mlm_b, nsp_b, grads_b) = results
        assert mlm_a == pytest.approx(mlm_b, abs=1e-5) and nsp_a == pytest.approx(nsp_b, abs=1e-5)
        for a, b in zip(grads_a, grads_b):
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def _corpus(tmp_path, n_docs=30):
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa", "lambda", "sigma"]
    docs = ["\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(4, 12))) + f" doc{d}."
                      for _ in range(rng.randint(3, 8))) for d in range(n_docs)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(docs) + "\n")
    return {"format": "google", "paths": str(path)}


def test_document_parts_are_disjoint_and_complete(tmp_path):
    import datasets

    from bert_pl.pretraining.corpus import documents

    source = _corpus(tmp_path)
    whole = [tuple(d) for d in documents(source)]
    parts = [[tuple(d) for d in documents(source, p, 3)] for p in range(3)]
    assert sorted(sum(parts, [])) == sorted(whole) and all(parts)
    # a `datasets` copy saved to disk (the hub reader's offline form) splits with datasets' own split_dataset_by_node
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"text": [" ".join(d) for d in whole]}).save_to_disk(str(saved))
    hub = {"format": "hub", "name": str(saved)}
    hub_parts = [[tuple(d) for d in documents(hub, p, 2)] for p in range(2)]
    assert sorted(sum(hub_parts, [])) == sorted(tuple(d) for d in documents(hub)) and all(hub_parts)
    assert not set(hub_parts[0]) & set(hub_parts[1])


@pytest.mark.parametrize("workers", [0, 2])
def test_streaming_instances_resume_at_the_exact_batch(tmp_path, minilm_tokenizer, collator_vocab, workers):
    import torch
    from torch.utils.data import DataLoader

    from bert_pl.pretraining.instances import StreamingInstances

    def batches(start, n, rank=0):
        data = StreamingInstances(_corpus(tmp_path), minilm_tokenizer.to_str(), "train", 64, 0.1, 1, True, 5,
                                  docs_per_shard=6, rank=rank, world_size=2, batch_size=4)
        data.start_at(start)
        loader = DataLoader(data, batch_size=4, num_workers=workers,
                            collate_fn=MaskingCollator(collator_vocab, seed=5, max_seq_length=64))
        out = []
        for batch in loader:
            out.append(batch)
            if len(out) == n:
                return out

    full, resumed = batches(0, 12), batches(5, 7)
    for a, b in zip(full[5:], resumed):
        assert all(torch.equal(a[k], b[k]) for k in a)
    other_rank = batches(0, 12, rank=1)
    assert not any(torch.equal(a["input_ids"], b["input_ids"]) for a in full for b in other_rank)
