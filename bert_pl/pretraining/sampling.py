"""A shuffling sampler that shards by rank, knows its epoch, and can start mid-epoch, so resumes are exact."""
from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset, Sampler


class ResumableSampler(Sampler):
    """Yields (index, epoch). The order is a permutation seeded by (seed, epoch), padded to a multiple of
    `world_size` and sliced `rank::world_size`, so ranks see disjoint data; `start_at(n)` skips the first n samples
    of the current epoch on this rank (set on resume from the trainer's progress)."""

    def __init__(self, num_samples: int, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False):
        self.num_samples, self.shuffle, self.seed = num_samples, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def start_at(self, samples_done: int) -> None:
        self._skip = samples_done

    def _order(self) -> np.ndarray:
        n = self.num_samples
        order = np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle else np.arange(n)
        if self.drop_last:
            order = order[: n - n % self.world_size]
        elif n % self.world_size:
            order = np.concatenate([order, order[: self.world_size - n % self.world_size]])
        return order[self.rank::self.world_size]

    def __iter__(self):
        order = self._order()[self._skip:]
        self._skip = 0
        epoch = self.epoch
        return iter([(int(i), epoch) for i in order])

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
