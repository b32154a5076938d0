"""Preprocessing memory stays bounded as the corpus grows (documents stream through Arrow in shards)."""
import json
import sys


from conftest import ROOT, run_cli

SCRIPT = """
import json, random, resource, sys
sys.path.insert(0, {root!r})
from bert_pl.io import tokenization
from bert_pl.pretraining.instances import build_pretraining_dataset
path, cache, vocab = sys.argv[1], sys.argv[2], sys.argv[3]
tok = tokenization.from_vocab_file(vocab)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ds = build_pretraining_dataset({{"format": "google", "paths": [path]}}, tok, cache, max_seq_length=128,
                               dupe_factor=1, num_proc=1, docs_per_shard=500)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"peak_mb": peak / 1024, "growth_mb": (peak - before) / 1024, "instances": len(ds["train"])}}))
"""


def write_corpus(path, megabytes: int, seed: int = 0):
    import random

    rng = random.Random(seed)
    words = [f"word{i}" for i in range(3000)] + ["the", "of", "and", "a", "to", "in"] * 200
    size = 0
    with open(path, "w") as f:
        while size < megabytes * 2 ** 20:
            doc = "\n".join(" ".join(rng.choices(words, k=rng.randint(5, 25))) + "." for _ in range(rng.randint(3, 30)))
            f.write(doc + "\n\n")
            size += len(doc) + 2


def test_preprocessing_memory_does_not_grow_with_the_corpus(tmp_path, minilm_dir):
    results = {}
    for mb in (2, 12):
        corpus = tmp_path / f"corpus{mb}.txt"
        write_corpus(corpus, mb)
        script = tmp_path / "measure.py"
        script.write_text(SCRIPT.format(root=str(ROOT)))
        res = run_cli([str(script), str(corpus), str(tmp_path / f"cache{mb}"), str(minilm_dir / "vocab.txt")])
        assert res.returncode == 0, res.stderr[-2000:]
        results[mb] = json.loads(res.stdout.strip().splitlines()[-1])
    print(results, file=sys.stderr)
    assert results[12]["instances"] > 4 * results[2]["instances"]
    # six times the text: the peak grows by far less than the extra 10 MB of text (tokens would be ~4x that)
    assert results[12]["peak_mb"] - results[2]["peak_mb"] < 10
