"""The learning-rate schedule: a pure function of the epoch, so resuming needs no scheduler state;
and the default batch size, a pure function of the number of training videos."""
from __future__ import annotations

import math

from twostream.core.config import TrainConfig


def learning_rate(config: TrainConfig, epoch: int) -> float:
    """Learning rate of 0-based `epoch`: `step` multiplies by gamma once each listed epoch has
    been completed (the paper's 1/10 drops); `cosine` anneals from lr to 0 over the run."""
    if config.schedule == "step":
        return config.lr * config.gamma ** sum(epoch >= step for step in config.lr_steps)
    return 0.5 * config.lr * (1.0 + math.cos(math.pi * epoch / config.epochs))


# The default batch: 32 (the paper's and TSN's order), halved while an epoch would have fewer than
# MIN_STEPS_PER_EPOCH batches, down to MIN_BATCH_SIZE (batch norm needs a few samples). Powers of
# two, so that a training set that grows a little (a running extraction) rarely changes it.
DEFAULT_BATCH_SIZE = 32
MIN_BATCH_SIZE = 8
MIN_STEPS_PER_EPOCH = 8


def default_batch_size(videos: int) -> int:
    """The batch size for an epoch of `videos` samples (a process's share under torchrun)."""
    size = DEFAULT_BATCH_SIZE
    while size > MIN_BATCH_SIZE and videos // size < MIN_STEPS_PER_EPOCH:
        size //= 2
    return size
