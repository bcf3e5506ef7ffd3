"""Where a run computes: the device, and on CUDA automatic mixed precision (bfloat16 where
supported, else float16 with a GradScaler) and the channels_last memory format; on the CPU,
plain float32."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Any

import torch

from twostream.core.errors import TrainError
from twostream.core.world import ONE, World, setup_world


@dataclass(frozen=True)
class Device:
    device: torch.device
    amp_dtype: torch.dtype | None  # None: full precision
    channels_last: bool
    world: World = ONE  # the processes of the run (torchrun), of which this is one

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def scaler(self) -> torch.amp.GradScaler:
        # float16 gradients underflow without loss scaling; bfloat16 has float32's range
        return torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)

    def place(self, model: torch.nn.Module) -> None:
        """Move `model` here, in the channels_last memory format where that is used."""
        model.to(self.device)
        if self.channels_last:  # channels_last_3d for a 3D network (clip streams): its weights are 5-d
            video = any(p.dim() == 5 for p in model.parameters())
            model.to(memory_format=torch.channels_last_3d if video else torch.channels_last)


def resolve_device(name: str, amp: bool, channels_last: bool) -> Device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> Device; AMP and channels_last apply on CUDA only."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainError(f"device {name!r} asked for, but CUDA is not available here; use --device cpu (or auto)")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise TrainError(f"device {name!r} asked for, but there are {torch.cuda.device_count()} CUDA device(s)")
        dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if amp else None
        return Device(device, dtype, channels_last)
    return Device(torch.device("cpu"), None, False)


def setup_threads(threads: int) -> None:
    """0 keeps torch's default (one thread per core). On a shared machine fewer threads can be far
    faster: OpenMP threads spin while waiting for a core that another process holds."""
    if threads:
        torch.set_num_threads(threads)


def setup_device(config: Any) -> Device:
    """The threads and the device of a run or evaluation config (its threads, device, amp and
    channels_last); under torchrun, this process's place in the run, and on CUDA its own GPU."""
    setup_threads(config.threads)
    world = setup_world(config.device)
    name = config.device
    if world.distributed and name != "cpu" and torch.cuda.is_available():
        name = f"cuda:{world.local_rank}"  # one GPU a process
    return replace(resolve_device(name, config.amp, config.channels_last), world=world)
