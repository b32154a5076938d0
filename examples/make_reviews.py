"""Writes examples/reviews/{train,dev}.csv: short synthetic product reviews labelled positive/negative, the data the
README's tour fine-tunes on. Generated from templates with a fixed seed (no real data), so it is the same in every
clone: `python examples/make_reviews.py` rewrites the same files. Columns: id, text, label."""
import csv
import random
from pathlib import Path

PRODUCTS = ["phone", "laptop", "kettle", "blender", "camera", "jacket", "backpack", "lamp", "chair", "headset",
            "keyboard", "printer", "tent", "watch", "speaker", "router", "mattress", "toaster", "drill", "monitor"]
GOOD = ["great", "excellent", "wonderful", "reliable", "sturdy", "comfortable", "fast", "quiet", "beautiful",
        "perfect", "solid", "useful", "lovely", "brilliant", "superb"]
BAD = ["terrible", "awful", "broken", "flimsy", "useless", "noisy", "slow", "cheap", "disappointing", "faulty",
       "horrible", "poor", "fragile", "ugly", "defective"]
GOOD_CLAUSES = ["I would buy it again", "it works every day", "my family loves it", "worth every penny",
                "delivery was quick", "it exceeded my expectations", "highly recommended"]
BAD_CLAUSES = ["I returned it after a week", "it stopped working", "a waste of money", "support never answered",
               "it broke on the first day", "do not buy this", "I want a refund"]
NEUTRAL = ["I bought it in March", "it came in a blue box", "the manual has ten pages", "I use it at home",
           "my neighbour has the same one", "it arrived on a Tuesday"]
TEMPLATES = ["The {p} is {a}.", "This {p} is really {a}, {c}.", "{C}. The {p} feels {a}.", "A {a} {p}; {c}.",
             "{N}, and the {p} is {a}.", "Honestly the {p} is {a}. {C}.", "{a} {p}, {n}."]


def review(rng: random.Random, positive: bool) -> str:
    adj, clauses = (GOOD, GOOD_CLAUSES) if positive else (BAD, BAD_CLAUSES)
    c, n = rng.choice(clauses), rng.choice(NEUTRAL)
    text = rng.choice(TEMPLATES).format(p=rng.choice(PRODUCTS), a=rng.choice(adj), c=c, C=c.capitalize(), n=n,
                                        N=n.capitalize())
    return text[0].upper() + text[1:]


def write(path: Path, rows: int, rng: random.Random) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label"])
        for i in range(rows):
            positive = rng.random() < 0.5
            w.writerow([i, review(rng, positive), "positive" if positive else "negative"])


if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "reviews"
    rng = random.Random(0)
    write(out / "train.csv", 1600, rng)
    write(out / "dev.csv", 400, rng)
    print(f"wrote {out}/train.csv (1600 rows) and {out}/dev.csv (400 rows)")
