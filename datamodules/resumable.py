"""A training DataLoader that a fit stopped mid-epoch resumes where it stopped, in the same order."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader


class ResumableLoader(DataLoader):
    """A ``DataLoader`` whose position travels in Lightning's checkpoints, so a fit stopped in the
    middle of an epoch (SIGTERM, a step checkpoint, SIGKILL after one) continues with the batches
    the uninterrupted run would have trained on, not with a new shuffle from the epoch's start.

    Lightning saves ``state_dict()`` of every train loader that has one in each checkpoint and
    hands it back through ``load_state_dict`` before the resumed epoch's iterator is created.
    The state is what recreates the epoch's order and position:

    - the torch random state when the epoch's iterator was created: a shuffled loader draws its
      permutation's seed (and the workers' base seed) from it right then;
    - the sampler's epoch (under DDP Lightning's ``DistributedSampler`` shuffles by seed + epoch);
    - ``batches_trained``: the batches of this epoch trained so far, set after every batch by
      ``RandomStateInCheckpoint`` (the loader cannot count them itself: Lightning fetches ahead).

    On resume the skipped batches' indices are drawn but, without workers, their items are not
    loaded. Used like a ``DataLoader``; its constructor is ``DataLoader``'s (Lightning rebuilds it
    with a distributed sampler under DDP).
    """

    batches_trained: int = 0
    _epoch_state: dict[str, Any] | None = None  # of the iterator made last
    _resume: dict[str, Any] | None = None  # loaded, used by the next iterator

    def state_dict(self) -> dict[str, Any]:
        if self._epoch_state is None:
            return {}
        return {**self._epoch_state, "batches_trained": int(self.batches_trained)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume = dict(state_dict) if state_dict else None

    def __iter__(self):
        resume, self._resume = self._resume, None
        sampler = epoch_sampler(self)
        if resume is not None:
            torch.set_rng_state(resume["torch_rng"])
            if sampler is not None and resume["sampler_epoch"] is not None:
                sampler.set_epoch(resume["sampler_epoch"])
        self._epoch_state = {"torch_rng": torch.get_rng_state(),
                             "sampler_epoch": None if sampler is None else int(sampler.epoch)}
        iterator = super().__iter__()
        skip = self.batches_trained = 0 if resume is None else int(resume["batches_trained"])
        try:
            for _ in range(skip):
                # Without workers, draw the batch's indices only (``_next_index`` is the
                # single-process iterator's index step); workers have prefetched items already.
                iterator._next_index() if self.num_workers == 0 else next(iterator)
        except StopIteration:
            pass
        return iterator


def epoch_sampler(loader: Any) -> Any:
    """The loader's sampler that has ``set_epoch`` (a ``DistributedSampler`` under DDP), or None."""
    for sampler in (getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        if hasattr(sampler, "set_epoch") and hasattr(sampler, "epoch"):
            return sampler
    return None
