"""Masked-LM masking at batch time (Google's 80/10/10 recipe), padding, and sequence packing."""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from bert_pl.errors import UserConfigError
from bert_pl.io.tokenization import SPECIAL_TOKENS

IGNORE_INDEX = -100


class MaskingCollator:
    """Pads a batch and masks it (Google's recipe): 15% of non-special tokens, at most `max_predictions_per_seq`,
    80% -> [MASK], 10% -> a random token, 10% unchanged; whole-word masking optional.

    Each example's mask comes from its own generator seeded by (seed, epoch, index), so masks are new every epoch
    (dynamic), identical for any number of workers and after a resume, and fixed forever with `dynamic=False`.
    Outputs `mlm_positions`/`mlm_labels` of shape (B, P): P = `max_predictions_per_seq` when `static_shapes`
    (TPU), else the most predictions in the batch.

    `packing`: the batch's sequences are packed, first-fit by decreasing length, into as few rows of
    `max_seq_length` as they fit (at most `max_sequences_per_pack` each), with `sequence_ids`, `position_ids` and
    `nsp_positions` for the model. Masks are the same as unpacked, so is the loss; fewer rows, less padding."""

    def __init__(self, vocab: Dict[str, int], masked_lm_prob: float = 0.15, max_predictions_per_seq: int = 20,
                 whole_word_masking: bool = False, dynamic: bool = True, seed: int = 0,
                 max_seq_length: Optional[int] = None, static_shapes: bool = False, pad_to_multiple_of: int = 8,
                 packing: bool = False, max_sequences_per_pack: int = 3):
        if packing and (static_shapes or not max_seq_length):
            raise UserConfigError("data.packing=true packs into a varying number of rows of max_seq_length: it needs "
                                  "dynamic shapes (not accelerator=tpu / data.static_shapes=true)")
        if packing and max_sequences_per_pack < 1:
            raise UserConfigError("data.max_sequences_per_pack must be at least 1")
        self.packing, self.max_sequences_per_pack = packing, max_sequences_per_pack
        self.vocab_size = len(vocab)
        self.pad_id, self.cls_id, self.sep_id, self.mask_id = (vocab[t] for t in ("[PAD]", "[CLS]", "[SEP]", "[MASK]"))
        self.special = np.zeros(self.vocab_size, dtype=bool)
        self.continuation = np.zeros(self.vocab_size, dtype=bool)
        for tok, i in vocab.items():
            if tok in SPECIAL_TOKENS:
                self.special[i] = True
            if tok.startswith("##"):
                self.continuation[i] = True
        self.masked_lm_prob = masked_lm_prob
        self.max_predictions_per_seq = max_predictions_per_seq
        self.whole_word_masking = whole_word_masking
        self.dynamic = dynamic
        self.seed = seed
        self.max_seq_length = max_seq_length
        self.static_shapes = static_shapes
        self.pad_to_multiple_of = pad_to_multiple_of

    def mask_one(self, ids: np.ndarray, rng: np.random.Generator):
        """Returns (masked ids, positions, original ids at those positions), positions sorted."""
        cand = np.flatnonzero(~self.special[ids])
        if len(cand) == 0:
            return ids, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        num_to_predict = min(self.max_predictions_per_seq, max(1, int(round(len(ids) * self.masked_lm_prob))))
        if not self.whole_word_masking:
            # every token its own word: Google's walk over a permutation takes its first num_to_predict (the same
            # draws as the loop below, without a Python step per token)
            chosen = cand[rng.permutation(len(cand))[:num_to_predict]]
        else:
            starts = ~self.continuation[ids[cand]]
            starts[0] = True
            bounds = np.flatnonzero(starts).tolist() + [len(cand)]
            chosen_parts, count = [], 0
            for g in rng.permutation(len(bounds) - 1).tolist():
                if count >= num_to_predict:
                    break
                size = bounds[g + 1] - bounds[g]
                if count + size > num_to_predict:  # Google skips a word that would overshoot
                    continue
                chosen_parts.append(cand[bounds[g]:bounds[g + 1]])
                count += size
            chosen = np.concatenate(chosen_parts) if chosen_parts else np.zeros(0, dtype=np.int64)
        positions = np.sort(chosen.astype(np.int64))
        labels = ids[positions].astype(np.int64)
        masked = ids.copy()
        r = rng.random(len(positions))
        masked[positions[r < 0.8]] = self.mask_id
        rand_pos = positions[r >= 0.9]
        masked[rand_pos] = rng.integers(0, self.vocab_size, len(rand_pos))
        return masked, positions, labels

    def __call__(self, examples: List[dict]) -> dict:
        seqs = [np.asarray(e["input_ids"], dtype=np.int64) for e in examples]
        longest = max(len(s) for s in seqs)
        if self.max_seq_length and longest > self.max_seq_length:
            raise ValueError(f"an example has {longest} tokens, more than max_seq_length={self.max_seq_length}")
        if self.packing:
            return self._packed(seqs, examples)
        width = self.max_seq_length if self.static_shapes and self.max_seq_length else self._padded_width(longest)
        b = len(seqs)
        input_ids = np.full((b, width), self.pad_id, dtype=np.int64)
        token_type_ids = np.zeros((b, width), dtype=np.int64)
        attention_mask = np.zeros((b, width), dtype=np.int64)
        masked = []
        for i, (ids, ex) in enumerate(zip(seqs, examples)):
            ids_m, pos, lab = self.mask_one(ids, self._rng(ex, i))
            masked.append((pos, lab))
            n = len(ids)
            input_ids[i, :n] = ids_m
            attention_mask[i, :n] = 1
            token_type_ids[i, :n] = self._segments(ids)
        batch = {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": attention_mask}
        if "next_sentence_label" in examples[0]:
            batch["next_sentence_label"] = np.asarray([int(e["next_sentence_label"]) for e in examples])
        return self._with_predictions(batch, masked)

    def _padded_width(self, longest: int) -> int:
        """Dynamic padding: the longest row, rounded up to `pad_to_multiple_of`."""
        m = self.pad_to_multiple_of or 1
        return -(-longest // m) * m

    def _with_predictions(self, batch: dict, masked: List[tuple]) -> dict:
        """Add `mlm_positions`/`mlm_labels` (B, P) from each row's (positions, labels), as tensors."""
        import torch

        p = self.max_predictions_per_seq if self.static_shapes else max(1, max(len(pos) for pos, _ in masked))
        mlm_positions = np.zeros((len(masked), p), dtype=np.int64)
        mlm_labels = np.full((len(masked), p), IGNORE_INDEX, dtype=np.int64)
        for i, (pos, lab) in enumerate(masked):
            mlm_positions[i, :len(pos)] = pos
            mlm_labels[i, :len(lab)] = lab
        batch = {**batch, "mlm_positions": mlm_positions, "mlm_labels": mlm_labels}
        return {k: torch.from_numpy(np.ascontiguousarray(v)).long() for k, v in batch.items()}

    def _rng(self, example: dict, i: int) -> np.random.Generator:
        epoch = example.get("epoch", 0) if self.dynamic else 0
        return np.random.default_rng([self.seed, epoch, example.get("index", i)])

    def _segments(self, ids: np.ndarray) -> np.ndarray:
        """token_type_ids: 0 up to and including the first [SEP], 1 after it."""
        types = np.zeros(len(ids), dtype=np.int64)
        seps = np.flatnonzero(ids == self.sep_id)
        if len(seps) > 1:
            types[seps[0] + 1:] = 1
        return types

    def _packed(self, seqs: List[np.ndarray], examples: List[dict]) -> dict:
        rows: List[List[int]] = []  # first-fit decreasing; ties in input order, so packing is deterministic
        room: List[int] = []
        for i in sorted(range(len(seqs)), key=lambda i: -len(seqs[i])):
            r = next((r for r in range(len(rows)) if room[r] >= len(seqs[i])
                      and len(rows[r]) < self.max_sequences_per_pack), None)
            if r is None:
                rows.append([])
                room.append(self.max_seq_length)
                r = len(rows) - 1
            rows[r].append(i)
            room[r] -= len(seqs[i])
        b, k = len(rows), max(len(r) for r in rows)
        width = min(self._padded_width(max(self.max_seq_length - free for free in room)), self.max_seq_length)
        fields = {name: np.zeros((b, width), dtype=np.int64) for name in
                  ("input_ids", "token_type_ids", "sequence_ids", "position_ids")}
        fields["input_ids"][:] = self.pad_id
        nsp_positions = np.zeros((b, k), dtype=np.int64)
        nsp_labels = np.full((b, k), IGNORE_INDEX, dtype=np.int64)
        masked = [[] for _ in range(b)]
        has_nsp = "next_sentence_label" in examples[0]
        for r, members in enumerate(rows):
            start = 0
            for j, i in enumerate(sorted(members)):
                ids, n = seqs[i], len(seqs[i])
                ids_m, pos, lab = self.mask_one(ids, self._rng(examples[i], i))
                span = slice(start, start + n)
                fields["input_ids"][r, span] = ids_m
                fields["token_type_ids"][r, span] = self._segments(ids)
                fields["sequence_ids"][r, span] = j + 1
                fields["position_ids"][r, span] = np.arange(n)
                masked[r].append((pos + start, lab))
                nsp_positions[r, j] = start
                if has_nsp:
                    nsp_labels[r, j] = int(examples[i]["next_sentence_label"])
                start += n
        masked = [(np.concatenate([p for p, _ in parts]), np.concatenate([lab for _, lab in parts]))
                  for parts in masked]
        batch = {**fields, "nsp_positions": nsp_positions}
        if has_nsp:
            batch["next_sentence_label"] = nsp_labels
        return self._with_predictions(batch, masked)
