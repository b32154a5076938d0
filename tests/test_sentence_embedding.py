"""`task=sentence_embedding` (a bi-encoder) and its STS-B preset, as users run them: files written by the test (a
CSV with renamed columns, JSON lines with hard negatives), the real tokenizer, the real configs; in-process
fine-tuning on a tiny random model (the numbers of real training are the benchmark's:
benchmarks/sentence_embedding_vs_st.py)."""
import csv
import json

import numpy as np
import pytest
import torch

from bert_pl.tasks.base import TaskDataError
from bert_pl.model.heads import BertForSentenceEmbedding, pool
from bert_pl.tasks.sentence_embedding import SentenceEmbeddingTask, positive_ranks, retrieval_metrics
from conftest import SHARED
from helpers import compose_cfg

WORDS = ["a man plays a guitar", "a woman is slicing an onion", "the cat sleeps on the sofa", "two dogs run on grass",
         "a child rides a bike", "the stock market fell today", "rain is expected tomorrow", "he cooks pasta",
         "Café naïve façade, with commas", 'She said "no", then left']


def pairs(n=24):
    """Scored pairs in columns the task would not find by itself (left/right/rating), ratings 0..5."""
    return [{"pair_id": f"p{i}", "left": WORDS[i % 10], "right": WORDS[(i * 3) % 10] + f" number {i}",
             "rating": round((i % 11) / 2, 1)} for i in range(n)]


def triplets(n=24):
    return [{"anchor": f"question {i}: {WORDS[i % 10]}?", "positive": f"{WORDS[i % 10]} (answer {i})",
             "negative": WORDS[(i + 5) % 10]} for i in range(n)]


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


SCORED = dict(text_columns=["left", "right"], label_column="rating", id_column="pair_id", score_scale=5)


def make_task(tokenizer, train, dev, **kwargs):
    task = SentenceEmbeddingTask(train_file=str(train), validation_file=str(dev), **kwargs)
    task.set_tokenizer(tokenizer)
    return task


def error(tokenizer, train, dev, **kwargs) -> str:
    with pytest.raises(TaskDataError) as e:
        make_task(tokenizer, train, dev, **kwargs).prepare()
    message = str(e.value)
    assert "\n" not in message
    return message


# -- reading --------------------------------------------------------------------------------------------------------
def test_scored_pairs_from_a_csv_with_renamed_columns(tmp_path, minilm_tokenizer):
    rows = pairs()
    train = write_csv(tmp_path / "train.csv", rows)
    dev = write_csv(tmp_path / "dev.csv", rows[:8])
    task = make_task(minilm_tokenizer, train, dev, **SCORED)
    task.prepare()
    assert task.kind == "scored" and task.main_metric == "spearman"
    assert task.head_kwargs() == {"pooling": "mean", "normalize": True, "loss": "cosine", "scale": 20.0}
    table = task.features("train")
    assert len(table) == 24 and table.row_ids[:2] == ["p0", "p1"] and table.gold[3] == 1.5
    np.testing.assert_allclose(table.scores, [r["rating"] / 5 for r in rows], rtol=1e-6)
    f = table[9]  # each text its own sequence: [CLS] text [SEP], segment 0
    for text, ids in zip((rows[9]["left"], rows[9]["right"]), f["texts"]):
        assert ids.tolist() == minilm_tokenizer.encode(text).ids
    assert minilm_tokenizer.decode(table[8]["texts"][0].tolist()) == "cafe naive facade, with commas"
    batch = task.collator()([table[i] for i in range(3)])
    assert batch["input_ids"].shape[:2] == (3, 2) and batch["input_ids"].shape[2] % 8 == 0
    assert batch["attention_mask"][1, 1].sum() == len(table[1]["texts"][1]) and "token_type_ids" not in batch
    torch.testing.assert_close(batch["labels"], torch.tensor([0.0, 0.1, 0.2]))
    # found without being named: sentence1/sentence2 + score (STS-B's names), scored by default
    sts = [{"sentence1": r["left"], "sentence2": r["right"], "score": r["rating"]} for r in rows]
    task = make_task(minilm_tokenizer, write_csv(tmp_path / "sts.csv", sts), tmp_path / "sts.csv", score_scale=5)
    task.prepare()
    assert task.kind == "scored" and len(task.features("dev")[0]["texts"]) == 2


def test_anchor_positive_negative_rows_and_a_test_file(tmp_path, minilm_tokenizer):
    rows = triplets()
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    dev = write_jsonl(tmp_path / "dev.jsonl", [{k: r[k] for k in ("anchor", "positive")} for r in rows[:6]])
    test = write_csv(tmp_path / "test.csv", [{"anchor": r["anchor"], "positive": r["negative"]} for r in rows[:4]])
    task = make_task(minilm_tokenizer, train, dev, test_file=str(test), pooling="cls", scale=30)
    task.prepare()
    assert task.kind == "retrieval" and task.main_metric == "recall_at_1" and task.test_splits() == ["test"]
    assert task.head_kwargs() == {"pooling": "cls", "normalize": True, "loss": "ranking", "scale": 30.0}
    assert [len(task.features(s)[0]["texts"]) for s in ("train", "dev", "test")] == [3, 2, 2]  # negatives train only
    assert task.features("train").scores is None and "labels" not in task.collator()([task.features("train")[0]])
    assert task.collator()([task.features("train")[i] for i in range(5)])["input_ids"].shape[:2] == (5, 3)
    # data.text_columns=[a,b,c] on files whose dev set has no negatives: dev is read by its first two
    renamed = [{"q": r["anchor"], "doc": r["positive"], "bad": r["negative"]} for r in rows]
    task = make_task(minilm_tokenizer, write_csv(tmp_path / "r.csv", renamed), dev, text_columns=["q", "doc", "bad"],
                     kind="retrieval")
    with pytest.raises(TaskDataError, match=r"dev.jsonl: no column\(s\) \['q', 'doc'\]"):
        task.prepare()


def test_bad_input_is_one_line_naming_file_row_and_fix(tmp_path, minilm_tokenizer):
    rows = pairs(12)
    good = write_csv(tmp_path / "good.csv", rows)

    def bad(name, change, **kwargs):
        broken = [dict(r) for r in rows]
        change(broken)
        return error(minilm_tokenizer, good, write_csv(tmp_path / name, broken), **{**SCORED, **kwargs})

    assert bad("big.csv", lambda r: r[4].update(rating=7)) == (
        f"{tmp_path / 'big.csv'}: row 6: score '7' is beyond data.score_scale=5 (scores are divided by it to compare "
        f"with cosines in [-1, 1]); set data.score_scale to the largest score; fix the row, or set "
        f"data.on_bad_row=skip to skip such rows")
    assert bad("word.csv", lambda r: r[2].update(rating="high")).startswith(
        f"{tmp_path / 'word.csv'}: row 4: score 'high' is not a number; fix the row")
    assert bad("empty.csv", lambda r: r[1].update(right="  ")).startswith(
        f"{tmp_path / 'empty.csv'}: row 3: empty text in column 'right'; fix the row")
    assert "row 2: the score is empty" in bad("noscore.csv", lambda r: r[0].update(rating=""))
    assert error(minilm_tokenizer, good, good, text_columns=["left", "rite"], label_column="rating") == (
        f"{good}: no column(s) ['rite']; columns found: ['pair_id', 'left', 'right', 'rating']. Set "
        f"data.text_columns=[...] to the text columns")
    assert error(minilm_tokenizer, good, good, text_columns=["left", "right"], kind="scored") == (
        f"{good}: no score column 'score'; columns found: ['pair_id', 'left', 'right', 'rating']. Set "
        f"data.label_column=NAME (or data.kind=retrieval for anchor/positive rows)")
    assert error(minilm_tokenizer, good, tmp_path / "nope.csv", **SCORED).startswith(
        f"data file {tmp_path / 'nope.csv'} not found")
    assert error(minilm_tokenizer, good, good, **SCORED, main_metric="mrr") == (
        "data.main_metric='mrr': scored data is scored by spearman, pearson")
    skipped = make_task(minilm_tokenizer, good, write_csv(tmp_path / "s.csv", [dict(r, rating=9) if i == 3 else r
                                                                               for i, r in enumerate(rows)]),
                        **SCORED, on_bad_row="skip")
    skipped.prepare()
    assert len(skipped.features("dev")) == 11
    for kwargs, message in [({"pooling": "sum"}, "data.pooling='sum': use mean, cls, max"),
                            ({"kind": "pairs"}, "data.kind='pairs': use auto, scored, retrieval"),
                            ({"score_scale": 0}, "data.score_scale=0: must be a number > 0"),
                            ({"text_columns": ["a"]}, "data.text_columns=['a']: give two columns"),
                            ({"kind": "scored", "text_columns": ["a", "b", "c"]}, "scored pairs have two text"),
                            ({"validation_file": None}, "no validation data: pass data.validation_file=PATH")]:
        with pytest.raises(TaskDataError, match=message.replace("[", r"\[").replace("(", r"\(")):
            SentenceEmbeddingTask(**{"train_file": str(good), "validation_file": str(good), **kwargs})


# -- metrics --------------------------------------------------------------------------------------------------------
def test_scored_metrics_are_scipys_spearman_and_pearson_of_cosines(tmp_path, minilm_tokenizer):
    stats = pytest.importorskip("scipy.stats")
    rows = pairs(40)
    train = write_csv(tmp_path / "train.csv", rows)
    task = make_task(minilm_tokenizer, train, train, **SCORED)
    task.prepare()
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 2, 16)).astype(np.float32)
    order = rng.permutation(40)  # gathered out of order, put back by example_index
    got = task.evaluate("dev", {"embeddings": emb[order], "example_index": order})
    cos = [a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in emb.astype(np.float64)]
    gold = [r["rating"] for r in rows]  # the raw scores: correlations do not depend on the scale
    assert got["spearman"] == pytest.approx(stats.spearmanr(cos, gold).statistic, abs=1e-9)
    assert got["pearson"] == pytest.approx(stats.pearsonr(cos, gold).statistic, abs=1e-9)
    predictions = task.prediction_rows("dev", {"embeddings": emb[order], "example_index": order})
    assert [p["id"] for p in predictions] == [f"p{i}" for i in range(40)] and predictions[3]["gold"] == 1.5
    assert [p["similarity"] for p in predictions] == pytest.approx(cos, abs=1e-6)


def test_recall_at_1_and_mrr_by_hand():
    # 4 anchors, 4 positives (unit vectors along axes): anchor i's closest positives, in order, are set by hand
    positives = np.eye(4)
    anchors = np.array([[1.0, 0.1, 0, 0],     # own positive (0) first: rank 1
                        [0.9, 0.5, 0, 0],     # positive 0 (0.9) before its own (0.5): rank 2
                        [0.2, 0.3, 0.1, 0],   # 1 (0.3), 0 (0.2) before its own (0.1): rank 3
                        [0, 0, 0.7, 0.7]])    # a tie with positive 2 counts in its favour: rank 1
    assert positive_ranks(anchors, positives).tolist() == [1, 2, 3, 1]
    got = retrieval_metrics(anchors, positives)
    assert got["recall_at_1"] == pytest.approx(2 / 4)
    assert got["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1) / 4)
    # blocks of anchors give the same ranks as the whole matrix
    rng = np.random.default_rng(1)
    a, p = rng.normal(size=(50, 8)), rng.normal(size=(50, 8))
    assert positive_ranks(a, p, block=7).tolist() == positive_ranks(a, p).tolist()


# -- the model ------------------------------------------------------------------------------------------------------
def test_head_pooling_losses_and_padding(minilm_tokenizer):
    from bert_pl.model.bert import BertConfig

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=minilm_tokenizer.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=64)
    texts = [minilm_tokenizer.encode(t).ids for t in WORDS[:6]]
    width = max(map(len, texts)) + 5
    ids = torch.zeros(3, 2, width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for n, t in enumerate(texts):
        ids[n // 2, n % 2, :len(t)], mask[n // 2, n % 2, :len(t)] = torch.tensor(t), 1
    for pooling in ("mean", "cls", "max"):
        model = BertForSentenceEmbedding(cfg, pooling=pooling).eval()
        with torch.no_grad():
            emb = model(ids, attention_mask=mask)["embeddings"]
            alone = torch.stack([model(torch.tensor([t]))["embeddings"][0] for t in texts]).view(3, 2, -1)
            cfg.unpad = True  # the fast path: same numbers
            fast = BertForSentenceEmbedding(cfg, pooling=pooling).eval()
            fast.load_state_dict(model.state_dict())
            cfg.unpad = False
            unpadded = fast(ids, attention_mask=mask)["embeddings"]
        assert emb.shape == (3, 2, 32)
        torch.testing.assert_close(emb, alone, atol=1e-5, rtol=1e-5)  # padding changes nothing
        torch.testing.assert_close(unpadded, emb, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(emb.norm(dim=-1), torch.ones(3, 2))
    tokens, m = torch.randn(2, 4, 3), torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    torch.testing.assert_close(pool(tokens, m, "mean")[0], tokens[0, :2].mean(0))
    torch.testing.assert_close(pool(tokens, m, "max")[0], tokens[0, :2].amax(0))
    model = BertForSentenceEmbedding(cfg, normalize=False).eval()
    with torch.no_grad():
        out = model(ids, attention_mask=mask, labels=torch.tensor([0.2, 0.9, 0.5]))
        e = out["embeddings"]
        cos = torch.nn.functional.cosine_similarity(e[:, 0], e[:, 1])
        torch.testing.assert_close(out["loss"], ((cos - torch.tensor([0.2, 0.9, 0.5])) ** 2).mean())
        assert model(ids, attention_mask=mask)["loss"] is None  # pairs without scores (prediction): no loss
        ranking = BertForSentenceEmbedding(cfg, normalize=False, loss="ranking", scale=20.0).eval()
        ranking.load_state_dict(model.state_dict())
        triples = torch.cat([ids, ids[[1, 2, 0], :1]], 1), torch.cat([mask, mask[[1, 2, 0], :1]], 1)
        out = ranking(triples[0], attention_mask=triples[1])
        e = torch.nn.functional.normalize(out["embeddings"], dim=-1)
        candidates = torch.cat([e[:, 1], e[:, 2]])  # positives, then hard negatives: the in-batch candidates
        logits = 20.0 * e[:, 0] @ candidates.T
        expected = -torch.log_softmax(logits, 1)[torch.arange(3), torch.arange(3)].mean()
        torch.testing.assert_close(out["loss"], expected)


# -- configs and training -------------------------------------------------------------------------------------------
def test_stsb_embedding_preset_reads_glue_sts_b(tmp_path, minilm_tokenizer):
    from hydra.utils import instantiate

    if not (SHARED / "glue" / "STS-B" / "dev.tsv").is_file():
        pytest.skip("shared STS-B data is absent")
    cfg = compose_cfg("finetune", ["task=stsb_embedding", f"data_dir={SHARED / 'glue'}", "data.feature_cache=null",
                                   "data.limit_train_examples=50", "data.limit_eval_examples=30"], tmp_path)
    assert cfg.data.score_scale == 5.0 and cfg.data.kind == "scored"
    task = instantiate(cfg.data)
    task.set_tokenizer(minilm_tokenizer)
    task.prepare()
    assert task.kind == "scored" and [len(task.features(s)) for s in ("train", "dev")] == [50, 30]
    assert task.features("dev").gold[:2] == [5.0, 4.75] and task.features("dev").scores[1] == pytest.approx(0.95)


def finetune(pretrained, out, train, dev, *extra):
    import bert_pl

    return bert_pl.finetune("sentence_embedding", str(pretrained), [
        f"data.train_file={train}", f"data.validation_file={dev}", "trainer.max_epochs=1", "logger=[]",
        "data.feature_cache=null", *extra], output_dir=str(out)).best["value"]


@pytest.fixture(scope="module")
def scored_run(tiny_pretrained, tmp_path_factory):
    """A tiny run on scored pairs in renamed CSV columns, max pooling (not embed's generic [CLS] default)."""
    folder = tmp_path_factory.mktemp("sentence_embedding")
    rows = pairs(32)
    train = write_csv(folder / "train.csv", rows)
    dev = write_csv(folder / "dev.csv", rows[:12])
    best = finetune(tiny_pretrained, folder / "run", train, dev, "data.text_columns=[left,right]",
                    "data.label_column=rating", "data.score_scale=5", "data.id_column=pair_id", "data.pooling=max")
    return folder / "run", rows, best


def test_finetune_scored_pairs_and_retrieval_end_to_end(scored_run, tiny_pretrained, tmp_path):
    out, rows, best = scored_run
    results = json.loads((out / "results.json").read_text())
    assert results["kind"] == "scored" and results["pooling"] == "max" and results["best"]["metric"] == "spearman"
    assert set(results["dev"]["dev"]) == {"spearman", "pearson"} and best == results["best"]["value"]
    assert results["dev"]["dev"]["spearman"] == pytest.approx(best)  # the best checkpoint, reloaded
    predictions = [json.loads(line) for line in (out / "predictions_dev.jsonl").read_text().splitlines()]
    assert [p["id"] for p in predictions] == [f"p{i}" for i in range(12)]
    assert [p["gold"] for p in predictions] == [r["rating"] for r in rows[:12]]
    assert all(-1 <= p["similarity"] <= 1 for p in predictions)
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["bert_pl"]["head"] == "sentence_embedding"
    assert ckpt["bert_pl"]["task"] == {"max_seq_length": 128, "kind": "scored", "pooling": "max", "normalize": True,
                                       "score_scale": 5.0}
    assert not any(k.startswith("model.bert.pooler") for k in ckpt["state_dict"])  # no unused pooler weights

    rows = triplets(32)
    out = tmp_path / "retrieval"
    finetune(tiny_pretrained, out, write_jsonl(tmp_path / "train.jsonl", rows),
             write_jsonl(tmp_path / "dev.jsonl", rows[:10]), "data.batch_size=8")
    results = json.loads((out / "results.json").read_text())
    assert results["kind"] == "retrieval" and results["scale"] == 20.0
    assert set(results["dev"]["dev"]) == {"recall_at_1", "mrr"} and results["best"]["metric"] == "recall_at_1"
    predictions = [json.loads(line) for line in (out / "predictions_dev.jsonl").read_text().splitlines()]
    ranks = np.array([p["rank"] for p in predictions])
    assert np.mean(ranks == 1) == pytest.approx(results["dev"]["dev"]["recall_at_1"])
    assert np.mean(1 / ranks) == pytest.approx(results["dev"]["dev"]["mrr"])


# -- after training: bert_pl.load, predict.py, exports ---------------------------------------------------------------
TEXTS = ["A man is playing a guitar.", "Someone plays the guitar.", "Café naïve façade, über straße",
         "the stock market fell sharply today after the announcement " * 6]


def reference_vectors(run, texts):
    """The run's best weights in the head class with the run's settings (max pooling, normalised), each text alone
    (no batching, no padding)."""
    from bert_pl.io import checkpoints, tokenization

    ckpt = checkpoints.resolve(run)
    model = BertForSentenceEmbedding(ckpt.config, pooling="max", normalize=True).eval()
    model.load_state_dict(ckpt.state_dict)
    tok = tokenization.from_json_string(ckpt.tokenizer_json)
    tok.no_padding()
    tok.enable_truncation(128)
    with torch.no_grad():
        return np.stack([model(torch.tensor([tok.encode(t).ids]))["embeddings"][0].numpy() for t in texts])


def test_load_embeds_with_the_runs_pooling_and_predicts_pair_similarity(scored_run, tmp_path, capsys):
    import bert_pl
    from bert_pl.cli.predict import main

    run, _, _ = scored_run
    model = bert_pl.load(run)
    assert model.head == "sentence_embedding" and model.max_seq_length == 128
    vectors = model.embed(TEXTS)
    np.testing.assert_allclose(vectors, reference_vectors(run, TEXTS), atol=1e-5)  # max pooling, normalised
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-6)
    assert not np.allclose(model.embed(TEXTS, pooling="cls"), vectors, atol=1e-3)  # another pooling: asked for
    pair, single = model.predict([(TEXTS[0], TEXTS[1]), TEXTS[2]])
    assert pair["similarity"] == pytest.approx(float(vectors[0] @ vectors[1]), abs=1e-5)
    np.testing.assert_allclose(single["embedding"], vectors[2], atol=1e-5)
    with pytest.raises(bert_pl.inference.model.PredictError, match="input 2: a sentence-embedding model takes a text"):
        model.predict([TEXTS[0], ("a", "b", "c")])

    # predict.py: tab-separated pairs and single texts (.txt), rows with renamed columns (csv), found columns (jsonl)
    (tmp_path / "in.txt").write_text(f"{TEXTS[0]}\t{TEXTS[1]}\n{TEXTS[2]}\n", encoding="utf-8")
    write_csv(tmp_path / "in.csv", [{"key": "k1", "left": TEXTS[0], "right": TEXTS[1]},
                                    {"key": "k2", "left": TEXTS[2], "right": TEXTS[3]}])
    write_jsonl(tmp_path / "in.jsonl", [{"sentence1": TEXTS[0], "sentence2": TEXTS[1]}])
    outputs = {}
    for name, extra in (("in.txt", []), ("in.csv", ["text_columns=[left,right]", "id_column=key"]),
                        ("in.jsonl", [])):
        out = tmp_path / f"{name}.out.jsonl"
        try:
            main([f"model={run}", f"input={tmp_path / name}", f"output={out}", *extra])
        except SystemExit as e:
            assert e.code in (0, None), capsys.readouterr().err
        outputs[name] = [json.loads(line) for line in out.read_text().splitlines()]
    cos = float(vectors[0] @ vectors[1])
    assert outputs["in.txt"][0] == {"similarity": pytest.approx(cos, abs=1e-5)}
    np.testing.assert_allclose(outputs["in.txt"][1]["embedding"], vectors[2], atol=1e-5)
    assert outputs["in.csv"] == [{"id": "k1", "similarity": pytest.approx(cos, abs=1e-5)},
                                 {"id": "k2", "similarity": pytest.approx(float(vectors[2] @ vectors[3]), abs=1e-5)}]
    assert outputs["in.jsonl"] == [{"id": "0", "similarity": pytest.approx(cos, abs=1e-5)}]


def test_exports_load_in_sentence_transformers_bert_pl_and_onnxruntime_with_the_same_vectors(scored_run, tmp_path):
    st = pytest.importorskip("sentence_transformers")
    pytest.importorskip("onnxruntime")
    import bert_pl
    from bert_pl import export

    run, _, _ = scored_run
    ours = bert_pl.load(run).embed(TEXTS)

    def cosine(a, b):
        return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)

    export.main([str(run), str(tmp_path / "hf"), "--format", "hf"])
    hf = tmp_path / "hf"
    assert [m["type"].rsplit(".", 1)[1] for m in json.loads((hf / "modules.json").read_text())] == [
        "Transformer", "Pooling", "Normalize"]
    pooling = json.loads((hf / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_max_tokens"] and not pooling["pooling_mode_mean_tokens"]
    assert pooling["word_embedding_dimension"] == 64
    assert json.loads((hf / "sentence_bert_config.json").read_text())["max_seq_length"] == 128
    assert "pipeline_tag: sentence-similarity" in (hf / "README.md").read_text()
    theirs = st.SentenceTransformer(str(hf), device="cpu").encode(TEXTS, convert_to_numpy=True)
    assert cosine(theirs, ours).min() >= 0.9999
    again = bert_pl.load(hf)  # the folder back in bert-pl: the same head, pooling and length
    assert again.head == "sentence_embedding" and again.max_seq_length == 128
    assert cosine(again.embed(TEXTS), ours).min() >= 0.9999

    export.main([str(run), str(tmp_path / "onnx"), "--format", "onnx"])
    onnx = bert_pl.load(tmp_path / "onnx")
    assert onnx.is_onnx and onnx.head == "sentence_embedding"
    np.testing.assert_allclose(onnx.embed(TEXTS), ours, atol=1e-4)
    assert onnx.predict((TEXTS[0], TEXTS[1]))["similarity"] == pytest.approx(float(ours[0] @ ours[1]), abs=1e-4)


def test_a_sentence_transformers_folder_embeds_as_sentence_transformers_does(minilm_dir):
    """The MiniLM package folder (modules.json: Transformer, mean Pooling, Normalize; max_seq_length 256)."""
    st = pytest.importorskip("sentence_transformers")
    import bert_pl

    model = bert_pl.load(minilm_dir)
    assert model.head == "sentence_embedding" and model.max_seq_length == 256
    texts = TEXTS + ["word " * 300]  # past 256 tokens: cut where sentence-transformers cuts
    ours = model.embed(texts)
    theirs = st.SentenceTransformer(str(minilm_dir), device="cpu").encode(texts, convert_to_numpy=True)
    assert ((ours * theirs).sum(1)).min() >= 0.9999
