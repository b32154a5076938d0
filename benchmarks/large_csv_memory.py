"""Peak memory of reading and tokenising a large CSV with `task=text_classification` (not a test).

    python benchmarks/large_csv_memory.py --rows 1000000

Writes a CSV of `--rows` synthetic review-like rows (two classes) to a temporary folder, builds the task's features
from it with Google's uncased vocab, and prints the peak resident memory (ru_maxrss) and the time taken.
"""
import argparse
import csv
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from minilm_weights import google_uncased_vocab  # noqa: E402  (benchmarks/, the script's own folder)

WORDS = ("the movie was great terrible plot acting boring wonderful film story characters ending music scenes "
         "slow fast funny sad brilliant awful long short best worst ever seen watch again recommend never").split()


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--words", type=int, default=40, help="words per row (about 1.1 WordPieces each)")
    args = p.parse_args(argv)
    from bert_pl.io import tokenization
    from bert_pl.tasks.classification import TextClassificationTask

    vocab = Path(google_uncased_vocab())
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "text", "label"])
            for i in range(args.rows):
                w.writerow([i, " ".join(rng.choice(WORDS) for _ in range(args.words)), rng.choice(("pos", "neg"))])
        size_mb = path.stat().st_size / 2 ** 20
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.time()
        task = TextClassificationTask(train_file=str(path), validation_file=str(path), max_seq_length=128)
        task.set_tokenizer(tokenization.load(vocab))
        table = task.features("train")
        seconds = time.time() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"rows": len(table), "csv_mb": round(size_mb, 1), "tokens": int(table.offsets[-1]),
              "peak_rss_mb": round(peak), "rss_before_mb": round(before), "seconds": round(seconds, 1)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
