"""Google's pairing (`create_instances_from_document`), step by step and draw for draw, and the tokenising of
documents into sentence ids. No torch here: the preparation workers (`prepare.py`) import only this."""
from __future__ import annotations

import random
from typing import Dict, List, Sequence


def truncate_seq_pair(tokens_a: list, tokens_b: list, max_num_tokens: int, rng: random.Random) -> None:
    """Truncate the longer segment one token at a time, from the front or the back at random (Google's rule and
    random draws), counting the cuts and slicing once: linear in the tokens removed, where deleting from the
    front of a list one token at a time was quadratic (a 400k-token line took 13 s)."""
    lengths, cut = [len(tokens_a), len(tokens_b)], [[0, 0], [0, 0]]  # per segment: (front, back) cuts
    while lengths[0] + lengths[1] > max_num_tokens:
        longer = 0 if lengths[0] > lengths[1] else 1
        cut[longer][0 if rng.random() < 0.5 else 1] += 1
        lengths[longer] -= 1
    for tokens, (front, back) in zip((tokens_a, tokens_b), cut):
        if front or back:
            tokens[:] = tokens[front:len(tokens) - back]


def create_instances_from_document(all_documents: Sequence[Sequence[Sequence[int]]], document_index: int,
                                   max_seq_length: int, short_seq_prob: float, rng: random.Random,
                                   nsp: bool = True):
    """Returns (tokens_a, tokens_b, is_random_next) triples for one document (token ids, no specials).

    With nsp=False, segments are contiguous text only (B follows A, or B is empty when a chunk has one segment)."""
    document = all_documents[document_index]
    max_num_tokens = max_seq_length - 3
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)

    instances = []
    current_chunk: List[Sequence[int]] = []
    current_length = 0
    i = 0
    while i < len(document):
        segment = document[i]
        current_chunk.append(segment)
        current_length += len(segment)
        if i == len(document) - 1 or current_length >= target_seq_length:
            if current_chunk:
                a_end = 1
                if len(current_chunk) >= 2:
                    a_end = rng.randint(1, len(current_chunk) - 1)
                tokens_a = [t for seg in current_chunk[:a_end] for t in seg]
                tokens_b: List[int] = []
                is_random_next = False
                if nsp and (len(current_chunk) == 1 or rng.random() < 0.5) and len(all_documents) > 1:
                    is_random_next = True
                    target_b_length = target_seq_length - len(tokens_a)
                    for _ in range(10):
                        random_document_index = rng.randint(0, len(all_documents) - 1)
                        if random_document_index != document_index:
                            break
                    random_document = all_documents[random_document_index]
                    random_start = rng.randint(0, len(random_document) - 1)
                    for j in range(random_start, len(random_document)):
                        tokens_b.extend(random_document[j])
                        if len(tokens_b) >= target_b_length:
                            break
                    # The unused segments go back, so they are not wasted.
                    i -= len(current_chunk) - a_end
                else:
                    for j in range(a_end, len(current_chunk)):
                        tokens_b.extend(current_chunk[j])
                truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
                if tokens_a and (tokens_b or not nsp):
                    instances.append((tokens_a, tokens_b, is_random_next))
            current_chunk = []
            current_length = 0
        i += 1
    return instances


def build_input(tokens_a, tokens_b, cls_id: int, sep_id: int) -> List[int]:
    """[CLS] A [SEP] B [SEP]; token types are derived from the first [SEP] at batch time."""
    ids = [cls_id, *tokens_a, sep_id]
    if tokens_b:
        ids += [*tokens_b, sep_id]
    return ids


class _InstanceBuilder:
    """The `datasets.map` function: a batch of tokenised documents (one shard) -> pretraining instances.

    Random-next segments are drawn from the same shard, so memory is bounded by the shard, as Google's per-file runs,
    and also from `random_pool` when given: the validation split, often a handful of documents, draws them from
    training documents too, so its NSP pairs are half random-next as in training (with one held-out document they
    would all be IsNext).
    """

    def __init__(self, max_seq_length, short_seq_prob, dupe_factor, nsp, seed, cls_id, sep_id, random_pool=None,
                 progress=None):
        self.__dict__.update(locals())
        del self.__dict__["self"]

    def __call__(self, batch, indices):
        out = self.pair(batch["sentence_ids"], indices[0])
        if self.progress:
            self.progress(indices[-1] + 1)
        return out

    def pair(self, documents, key) -> Dict[str, list]:
        """Instances of `documents` (lists of sentence ids; empty ones skipped), `dupe_factor` passes, all draws
        from one generator seeded by (seed, key)."""
        docs = [d for d in documents if d]
        pool = docs + list(self.random_pool or [])
        out: Dict[str, list] = {"input_ids": [], "next_sentence_label": []}
        rng = random.Random(f"{self.seed}-{key}")
        for _ in range(self.dupe_factor):
            for di in range(len(docs)):
                for a, b, is_random in create_instances_from_document(
                        pool, di, self.max_seq_length, self.short_seq_prob, rng, self.nsp):
                    out["input_ids"].append(build_input(a, b, self.cls_id, self.sep_id))
                    out["next_sentence_label"].append(int(is_random))
        return out


class _SentenceTokenizer:
    """Sentences -> token ids; a sentence longer than `max_tokens` (a line with no sentence breaks) becomes
    consecutive `max_tokens` pieces of its document. Whole, it would give one truncated instance and lose the rest,
    and be copied and truncated in full each time it is drawn as a random next segment: quadratic (a 5 MB line
    beside a 5 MB document had not finished pairing after 14 minutes)."""

    def __init__(self, tokenizer, max_tokens: int, progress=None):
        self.tokenizer, self.max_tokens, self.progress = tokenizer, max_tokens, progress

    def __call__(self, batch, indices=None):
        flat = [s for doc in batch["sentences"] for s in doc]
        # no offsets, only ids: the fast variant
        enc = self.tokenizer.encode_batch_fast(flat, add_special_tokens=False) if flat else []
        out, k = [], 0
        for doc in batch["sentences"]:
            ids = [e.ids for e in enc[k:k + len(doc)]]
            k += len(doc)
            m = self.max_tokens
            out.append([s[i:i + m] for s in ids for i in range(0, len(s), m)])  # empty sentences drop out
        if self.progress:
            self.progress(indices[-1] + 1)
        return {"sentence_ids": out}
