"""The learning-rate schedule: a pure function of the epoch, so resuming needs no scheduler state."""
from __future__ import annotations

import math

from twostream.core.config import TrainConfig


def learning_rate(config: TrainConfig, epoch: int) -> float:
    """Learning rate of 0-based `epoch`: `step` multiplies by gamma once each listed epoch has
    been completed (the paper's 1/10 drops); `cosine` anneals from lr to 0 over the run."""
    if config.schedule == "step":
        return config.lr * config.gamma ** sum(epoch >= step for step in config.lr_steps)
    return 0.5 * config.lr * (1.0 + math.cos(math.pi * epoch / config.epochs))
