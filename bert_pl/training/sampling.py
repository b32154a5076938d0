"""A shuffling sampler that shards by rank, knows its epoch, and can start mid-epoch, so resumes are exact; shared by
pretraining and fine-tuning."""
from __future__ import annotations

import warnings

import numpy as np
from torch.utils.data import Dataset, Sampler

# Lightning warns on every mid-epoch resume unless the DataLoader itself is stateful; ours start mid-epoch through
# `ResumableSampler.resume_with` (and StreamingInstances.start_at), so the resumed run sees exactly the batches
# that were left (tests/test_resume.py, test_train_e2e.py).
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")


class ResumableSampler(Sampler):
    """Yields (index, epoch) (or plain indices with `with_epoch=False`). The order is a permutation seeded by
    (seed, epoch), padded to a multiple of `world_size` and sliced `rank::world_size`, so ranks see disjoint data.
    A resumed run skips what this rank already did in the epoch: read from the trainer (`resume_with`), or given
    (`start_at(n)`: the first n samples)."""

    def __init__(self, num_samples: int, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False, with_epoch: bool = True):
        self.with_epoch = with_epoch
        self.num_samples, self.shuffle, self.seed = num_samples, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch = 0
        self._skip = 0
        self._trainer = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def start_at(self, samples_done: int) -> None:
        self._skip = samples_done

    def resume_with(self, trainer, batch_size: int, drop_last_batch: bool = False) -> None:
        """Skip, on each new iterator, the batches `trainer` has already done in the current epoch (non-zero only
        in the first epoch of a resumed run). Read when iterated, not now: Lightning may build the loader (e.g. for
        `estimated_stepping_batches`) before it restores the checkpoint's progress."""
        self._trainer, self._batch_size, self._drop_last_batch = trainer, batch_size, drop_last_batch

    def _order(self) -> np.ndarray:
        n = self.num_samples
        order = np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle else np.arange(n)
        if self.drop_last:
            order = order[: n - n % self.world_size]
        elif n % self.world_size:
            order = np.concatenate([order, order[: self.world_size - n % self.world_size]])
        return order[self.rank::self.world_size]

    def __iter__(self):
        if self._trainer is not None:
            bs = self._batch_size
            n_batches = len(self) // bs if self._drop_last_batch else -(-len(self) // bs)
            self._skip = resume_offset(self._trainer, n_batches) * bs
        order = self._order()[self._skip:]
        self._skip = 0
        epoch = self.epoch
        # lazily: a list of Python ints (or pairs) costs ~30-85 bytes per instance, gigabytes at corpus scale
        return ((int(i), epoch) for i in order) if self.with_epoch else (int(i) for i in order)

    def __len__(self) -> int:
        """The whole epoch, skipped part included: Lightning's batch counter resumes from the checkpoint too."""
        n = self.num_samples
        return (n // self.world_size) if self.drop_last else -(-n // self.world_size)


class IndexedDataset(Dataset):
    """Wraps an Arrow dataset; an (index, epoch) key returns the row with both attached (they seed the masks)."""

    def __init__(self, data):
        self.data = data

    def __len__(self):
        return len(self.data)

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        row = dict(self.data[int(index)])
        row["index"], row["epoch"] = int(index), int(epoch)
        return row


def resume_offset(trainer, loader_len_batches: int) -> int:
    """Batches already done in the current epoch when resuming (0 on a fresh start or an epoch boundary)."""
    if trainer is None:
        return 0
    # A step checkpoint is written after the batch's optimizer step but before Lightning counts the batch as
    # `completed`, so `processed` is the number of batches whose update is in the checkpoint.
    done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
    return done if 0 < done < loader_len_batches else 0


def rank_info(trainer):
    if trainer is None:
        return 0, 1
    return trainer.global_rank, trainer.world_size


def loader_settings(trainer, num_workers: int, seed: int) -> dict:
    """DataLoader options shared by every loader: its own seeded generator (creating an iterator, e.g. for
    validation, then draws nothing from the global generator that dropout uses), page-locked batches on CUDA (the
    copy to the GPU overlaps compute), and workers kept alive across epochs and validation."""
    import torch

    on_cuda = trainer is not None and getattr(trainer.strategy.root_device, "type", "cpu") == "cuda"
    return {"num_workers": num_workers, "pin_memory": on_cuda, "persistent_workers": num_workers > 0,
            "generator": torch.Generator().manual_seed(seed)}
