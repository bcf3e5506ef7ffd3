"""Damaged shards: truncated, a corrupt header, corrupt frames, another format version, missing."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from flowprep.format.folder import ExtractionFolder
from flowprep.format.shards import FLOW_DIRECTIONS, RGB, VIDEOS_GROUP
from tests.support.cli import FLOWPREP, TWOSTREAM, run
from tests.support.reliability.common import Record, one_line

DAMAGE = ("truncated", "corrupt header", "corrupt frames", "another format version", "missing")


def damage(kind: str, folder: Path) -> Path:
    """Damage the first shard of an extraction folder (a copy) as `kind` says; return that shard."""
    import h5py

    shard = ExtractionFolder(folder).shard_paths()[0]
    data = bytearray(shard.read_bytes())
    rng = np.random.default_rng(0)
    if kind == "truncated":
        shard.write_bytes(bytes(data[: len(data) // 2]))
    elif kind == "corrupt header":  # the superblock after its signature: versions, sizes, addresses
        data[8:72] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
        shard.write_bytes(bytes(data))
    elif kind == "corrupt frames":  # every stored frame and flow field: the file opens, no item decodes
        with h5py.File(shard, "r") as f:
            spans = [_byte_spans(group[name]) for group in f[VIDEOS_GROUP].values()
                     for name in (RGB, *FLOW_DIRECTIONS.values())]
        for offset, size in (span for dataset_spans in spans for span in dataset_spans):
            data[offset:offset + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        shard.write_bytes(bytes(data))
    elif kind == "another format version":
        with h5py.File(shard, "r+") as f:
            f.attrs["format_version"] = 99
    elif kind == "missing":
        shard.unlink()
    return shard


def _byte_spans(dataset) -> list[tuple[int, int]]:
    """Where a dataset's bytes lie in its file: (offset, size) of its one block or of each chunk."""
    if dataset.chunks is None:
        return [(dataset.id.get_offset(), dataset.id.get_storage_size())]
    chunks = map(dataset.id.get_chunk_info, range(dataset.id.get_num_chunks()))
    return [(info.byte_offset, info.size) for info in chunks]


def damaged_shards(source: Path, work: Path, kinds: tuple[str, ...] = DAMAGE) -> list[Record]:
    """Each kind of damage: `flowprep verify` names the damaged file, and `train` and `evaluate`
    refuse in one line that names it (for damage a shard's header shows, before training; else at
    the first read, from a loader worker as from the main process)."""
    model = work / "intact_model"
    shutil.rmtree(model, ignore_errors=True)
    stream = ["--stream", "spatial", "--crop-size", "48", "--threads", "1"]
    fitted = run([*TWOSTREAM, "train", source, "--out", model, *stream, "--epochs", "1", "--batch-size",
                  "2", "--loader-workers", "0", "--val-every", "0"])
    if fitted.returncode != 0:
        raise RuntimeError(fitted.stderr[-2000:])
    records = []
    for kind in kinds:
        folder = work / kind.replace(" ", "_")
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(source, folder)
        shard = damage(kind, folder)
        verify = run([*FLOWPREP, "verify", folder])
        named = verify.returncode == 3 and shard.name in verify.stdout
        train = run([*TWOSTREAM, "train", folder, "--out", work / f"run_{folder.name}", *stream,
                     "--epochs", "1", "--batch-size", "2", "--loader-workers", "2", "--val-every", "0"])
        evaluate = run([*TWOSTREAM, "evaluate", model, "--extraction", folder, "--subset",
                        "train", "--clips", "2", "--crops", "center", "--loader-workers", "2", "--threads", "1", "--out",
                        work / f"scores_{folder.name}"])
        refused = {name: result.returncode == 2 and one_line(result) and shard.name in result.stderr
                   for name, result in (("train", train), ("evaluate", evaluate))}
        held = named and all(refused.values())
        last = (train.stderr.strip().splitlines() or [""])[-1]
        records.append(Record("damaged shard", kind, held, f"verify names it: {named}; refused: {refused}; "
                              f"{last[:200]}"))
    return records
