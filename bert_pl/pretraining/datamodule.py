"""The pretraining LightningDataModule: tokenizer (given or trained), cached instances, masking at batch time."""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Optional

import lightning as L
from torch.utils.data import DataLoader

from bert_pl.io import tokenization
from bert_pl.pretraining.corpus import CorpusError, fingerprint
from bert_pl.errors import UserConfigError
from bert_pl.model.bert import MIN_SEQ_LENGTH
from bert_pl.pretraining.instances import StreamingInstances, build_pretraining_dataset
from bert_pl.pretraining.masking import MaskingCollator
from bert_pl.pretraining.sentences import get_splitter
from bert_pl.training.sampling import IndexedDataset, ResumableSampler, loader_settings, rank_info, resume_offset

log = logging.getLogger(__name__)


# data.tokenizer settings that only a vocab trained here uses, with their defaults
TRAINING_ONLY = {"limit_alphabet": 1000, "handle_chinese_chars": True, "strip_accents": None}


class PretrainingDataModule(L.LightningDataModule):
    def __init__(self, source: dict, tokenizer: Optional[dict] = None, max_seq_length: int = 128,
                 short_seq_prob: float = 0.1, dupe_factor: int = 1, nsp: bool = True, masked_lm_prob: float = 0.15,
                 max_predictions_per_seq: int = 20, whole_word_masking: bool = False, dynamic_masking: bool = True,
                 batch_size: int = 32, eval_batch_size: Optional[int] = None, num_workers: int = 0,
                 num_proc: int = 1, val_fraction: float = 0.0, cache_dir: str = "data/cache", seed: int = 12345,
                 static_shapes: bool = False, docs_per_shard: int = 2000, packing: bool = False,
                 max_sequences_per_pack: int = 3, streaming: bool = False, sentence_splitter: str = "rule",
                 lock_timeout: float = 6 * 3600):
        super().__init__()
        self.source = dict(source)
        if self.source.get("format") in ("plain", "hub"):  # part of the source: the caches depend on it
            get_splitter(sentence_splitter)  # a name that does not work fails here, before any reading
            self.source["sentence_splitter"] = sentence_splitter
        self.tokenizer_cfg = dict(tokenizer or {})
        self.max_seq_length = max_seq_length
        self.build_kwargs = dict(max_seq_length=max_seq_length, short_seq_prob=short_seq_prob,
                                 dupe_factor=dupe_factor, nsp=nsp, val_fraction=val_fraction, seed=seed,
                                 num_proc=num_proc, docs_per_shard=docs_per_shard)
        self.mask_kwargs = dict(masked_lm_prob=masked_lm_prob, max_predictions_per_seq=max_predictions_per_seq,
                                whole_word_masking=whole_word_masking, dynamic=dynamic_masking, seed=seed,
                                max_seq_length=max_seq_length, static_shapes=static_shapes, packing=packing,
                                max_sequences_per_pack=max_sequences_per_pack)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.static_shapes = static_shapes
        self.seed = seed
        self.cache_dir = Path(cache_dir)
        self.tokenizer = None
        self.datasets = None
        self.streaming = streaming
        self.lock_timeout = lock_timeout
        checks = [(max_seq_length >= MIN_SEQ_LENGTH, f"data.max_seq_length={max_seq_length}: must be at least "
                                                     f"{MIN_SEQ_LENGTH} tokens ([CLS] A [SEP] B [SEP] and a few words)"),
                  (0 < masked_lm_prob < 1, f"data.masked_lm_prob={masked_lm_prob} must be in (0, 1)"),
                  (0 <= short_seq_prob <= 1, f"data.short_seq_prob={short_seq_prob} must be in [0, 1]"),
                  (0 <= val_fraction < 1, f"data.val_fraction={val_fraction} must be in [0, 1)"),
                  (max_predictions_per_seq >= 1, "data.max_predictions_per_seq must be at least 1"),
                  (batch_size >= 1 and dupe_factor >= 1, "data.batch_size and data.dupe_factor must be at least 1"),
                  (not (packing and static_shapes), "data.packing=true needs dynamic shapes; it cannot be combined "
                                                    "with data.static_shapes=true (accelerator=tpu)")]
        for ok, message in checks:
            if not ok:
                raise UserConfigError(message)

    # -- tokenizer ----------------------------------------------------------------------------------------------
    def load_tokenizer(self, from_checkpoint: Optional[str] = None):
        """`tokenizer.path` (vocab.txt / tokenizer.json / folder), else the checkpoint's, else train one (cached)."""
        if self.tokenizer is not None:
            return self.tokenizer
        cfg = self.tokenizer_cfg
        if cfg.get("path"):
            ignored = [f"data.tokenizer.{k}={cfg[k]}" for k, default in TRAINING_ONLY.items()
                       if cfg.get(k, default) != default]
            if ignored:
                log.warning("%s: settings for training a vocab, ignored with data.tokenizer.path=%s (its own "
                            "normaliser is used)", ", ".join(ignored), cfg["path"])
            self.tokenizer = tokenization.load(cfg["path"], cfg.get("lowercase"))
        elif from_checkpoint is not None:
            self.tokenizer = tokenization.from_json_string(from_checkpoint)
        else:
            self.tokenizer = self._train_tokenizer(cfg)
        return self.tokenizer

    def _train_tokenizer(self, cfg: dict):
        from bert_pl.pretraining.cachelock import cache_lock
        from bert_pl.pretraining.prepare import train_vocab

        settings = dict(vocab_size=int(cfg.get("vocab_size", 8000)), lowercase=bool(cfg.get("lowercase", True)),
                        min_frequency=int(cfg.get("min_frequency", 2)),
                        limit_alphabet=int(cfg.get("limit_alphabet", 1000)),
                        handle_chinese_chars=bool(cfg.get("handle_chinese_chars", True)),
                        strip_accents=cfg.get("strip_accents"))
        key = hashlib.sha256(f"{fingerprint(self.source)}|{sorted(settings.items())}".encode()).hexdigest()[:16]
        folder = self.cache_dir / f"tokenizer-{key}"
        ready = (folder / "tokenizer.json").is_file
        if not ready():
            with cache_lock(self.cache_dir / f".tokenizer-{key}.lock", f"the vocab {folder}",
                            timeout=self.lock_timeout, ready=ready) as holder:
                if holder and not ready():
                    log.info("training a %d-word WordPiece vocab on %s", settings["vocab_size"],
                             self.source.get("format"))
                    tok = train_vocab(self.source, settings, self.build_kwargs["num_proc"])
                    if tok.get_vocab_size() <= len(tokenization.SPECIAL_TOKENS):
                        raise CorpusError(f"the corpus {self.source} holds no text to train a vocab on")
                    tmp = folder.with_name(folder.name + ".tmp")
                    tokenization.save(tok, tmp)
                    tmp.rename(folder)
                    return tok
        try:
            return tokenization.load(folder)
        except tokenization.VocabError:  # damaged after it was written (renamed in whole)
            raise CorpusError(f"the cached vocab {folder / 'tokenizer.json'} is damaged; delete the cache "
                              f"folder {folder} and run again to train it anew") from None

    # -- data ---------------------------------------------------------------------------------------------------
    def prepare_data(self):
        if not self.streaming:
            self._build()

    def setup(self, stage: Optional[str] = None):
        if not self.streaming:
            self._build()

    def _build(self):
        if self.datasets is None:
            self.datasets = build_pretraining_dataset(self.source, self.load_tokenizer(), self.cache_dir,
                                                      lock_timeout=self.lock_timeout, **self.build_kwargs)
        return self.datasets

    def collator(self) -> MaskingCollator:
        return MaskingCollator(self.load_tokenizer().get_vocab(), **self.mask_kwargs)

    def _streaming_loader(self, split: str, train: bool) -> DataLoader:
        rank, world = rank_info(self.trainer)
        bs = self.batch_size if train else self.eval_batch_size
        k = self.build_kwargs
        val = k["val_fraction"]
        data = StreamingInstances(self.source, self.load_tokenizer().to_str(), split, k["max_seq_length"],
                                  k["short_seq_prob"], k["dupe_factor"], k["nsp"], k["seed"], k["docs_per_shard"],
                                  holdout_every=round(1 / val) if val else 0, rank=rank, world_size=world,
                                  batch_size=bs)
        if train:
            data.start_at(resume_offset(self.trainer, float("inf")))
        return DataLoader(data, batch_size=bs, collate_fn=self.collator(), drop_last=self.static_shapes,
                          **loader_settings(self.trainer, self.num_workers, self.seed))

    def _loader(self, split: str, train: bool) -> DataLoader:
        if self.streaming:
            return self._streaming_loader(split, train)
        data = self._build()[split]
        rank, world = rank_info(self.trainer)
        sampler = ResumableSampler(len(data), shuffle=train, seed=self.seed, rank=rank, world_size=world,
                                   drop_last=self.static_shapes)
        bs = self.batch_size if train else self.eval_batch_size
        if train:
            sampler.resume_with(self.trainer, bs, drop_last_batch=self.static_shapes)
        return DataLoader(IndexedDataset(data), batch_size=bs, sampler=sampler, collate_fn=self.collator(),
                          drop_last=train and self.static_shapes,
                          **loader_settings(self.trainer, self.num_workers, self.seed))

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        if self.streaming:
            return self._loader("validation", False) if self.build_kwargs["val_fraction"] else []
        if "validation" not in self._build():
            return []
        return self._loader("validation", False)
