"""The reliability suite's whole sweep: faults injected into real runs and bad input of every kind,
counted by kind (tests/support/reliability/ holds the scenarios; `make test` runs a sample).

    make bench-reliability

- kill -9 of an extraction at 18 named moments (every file a run writes: staging files while
  written and when committed, shards while packed and renamed, the index and the failures file
  while replaced, the staging files' removal) and at 3 times, each followed by the same command:
  the result must verify and equal an uninterrupted run's, byte for byte (PNG codecs: lossless);
- a disk that fills up mid-run (a small tmpfs, or RLIMIT_FSIZE where none can be mounted);
- a Dask worker killed mid-video; a Dask scheduler address that says nothing, answers HTTP or
  garbage (one line within --scheduler-timeout); a device out of memory (simulated on the CPU); training on a
  folder whose extraction (or one of whose parts) is still running;
- kill -9 of training and of feature-fusion training at their config and checkpoint writes, and
  of one torchrun rank: the checkpoint must load, and the same command (--resume) must end with
  the uninterrupted run's weights;
- damaged shards (truncated, corrupt header, corrupt frames, another format version, missing):
  verify names each, train and evaluate refuse in one line naming it;
- bad videos (one damaged mid-stream: FFmpeg reports it), bad manifests, bad arguments;
- tampered folders (tests/support/reliability/tampered.py): ids and shard names that leave the
  folder, HDF5 links, a FIFO as a shard, a shard of another extraction, JSON nested 100,000 deep,
  config values of the wrong type, control characters in ids, video symlinks out of the root,
  checkpoints whose tensors do not fit their config: one line each, nothing outside --out changed.
- signals (issue 19): SIGTERM and SIGINT to an extraction's main process and to its process group
  (one line, 143/130, no worker alive once the lock is free, the same command ends equal to an
  uninterrupted run), to extract, export-rawframes and import-rawframes while their workers still
  import (one line, no worker's traceback), to `manifest check --workers 1000` (capped, no worker
  left), and to training and feature-fusion training mid-epoch (a checkpoint at the
  next batch boundary within 30 s; --resume ends with the uninterrupted run's weights);
- concurrent training runs: a second `train` / `fuse-features train` into a running one's --out;
- scale of resume: a 20,000-video resume with 6,000 staged videos reaches its first new video in
  seconds; staging stays bounded with small shards and a slow packer.
Writes benchmarks/results/reliability.json; `make readme-figures` puts the counts in docs/reliability.md.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from common import REPO, save_results
from distributed import LocalCluster

sys.path.insert(0, str(REPO))
from tests.support import reliability as r  # noqa: E402
from tests.support.synthetic import factor_streams_dataset  # noqa: E402


def main() -> None:
    started = time.perf_counter()
    records: list[r.Record] = []

    def add(new: list[r.Record] | r.Record) -> None:
        for record in new if isinstance(new, list) else [new]:
            records.append(record)
            status = "held " if record.held else "BROKE"
            print(f"{status} {record.kind}: {record.what} {record.detail[:120]}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        reference = r.reference_run(work / "lossless", lossless=True)
        for point, count in r.EXTRACTION_POINTS:
            add(r.extraction_kill(reference, work / "kill", point, count))
        for share in r.TIMED_KILLS:
            add(r.extraction_kill(reference, work / "kill", None, share=share))
        add(r.disk_full(reference, work / "disk"))
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            add(r.dask_worker_kill(work / "dask", cluster.scheduler_address))
        for kind in r.SCHEDULER_IMPOSTORS:  # issue 30: an address that is not a Dask scheduler
            add(r.scheduler_impostor(reference.manifest, work / "impostor", kind))
        add(r.device_out_of_memory(work / "oom"))
        add(r.training_during_extraction(work / "running"))

        shards, streams = factor_streams_dataset(work / "train")
        baseline = work / "baseline"
        for fusion in (None, streams):
            kind = "fusion" if fusion else "stream"
            done = r.run(r.train_command(shards, baseline / kind, fusion))
            if done.returncode != 0:
                raise SystemExit(done.stderr[-2000:])
            for point, count in r.TRAINING_POINTS:
                add(r.training_kill(shards, work / "train_kill", baseline / kind / "checkpoint.pt", point, count,
                                    fusion))
        add(r.torchrun_rank_kill(shards, work / "ddp"))
        # issue 19: signals from schedulers, concurrent training runs, the scale of resume
        signalled = r.signal_reference(work / "signals")
        for name, to in (("SIGTERM", "main"), ("SIGTERM", "group"), ("SIGINT", "main"), ("SIGINT", "group")):
            add(r.extraction_signal(signalled, work / "signals", name, to))
        # issue 30: Ctrl-C while the workers still import; a stopped manifest check's pool
        early = r.early_reference(work / "early")
        for name in r.EARLY_COMMANDS:
            for after in (0.05, 0.15, 0.5):
                add(r.early_group_sigint(early, name, after))
        add(r.stopped_manifest_check(work / "early"))
        for fusion in (None, streams):
            reference_weights = baseline / ("fusion" if fusion else "stream") / "checkpoint.pt"
            for name, to, workers in (("SIGTERM", "main", 0), ("SIGTERM", "group", 2), ("SIGINT", "group", 0)):
                add(r.training_signal(shards, work / "train_signal", reference_weights, name, to, fusion, workers))
            add(r.concurrent_training(shards, work / "concurrent", reference_weights, fusion))
        add(r.torchrun_signal(shards, work / "ddp_signal"))
        add(r.scale_of_resume(work))
        add(r.staging_bound_run(work))
        add(r.damaged_shards(reference.out, work / "damaged"))
        add(r.bad_videos(work))
        add(r.bad_manifests(work))
        add(r.bad_arguments(work, shards))
        add(r.tampered_folders(work / "tampered"))  # issue 19: folders from elsewhere are input
        add(r.control_character_ids(work / "tampered"))
        add(r.video_symlinks(work / "tampered"))
        add(r.mismatched_checkpoints(work / "tampered"))
    path = save_results("reliability", {"records": [x.to_dict() for x in records], "summary": r.summary(records),
                                        "seconds": time.perf_counter() - started})
    broke = [x for x in records if not x.held]
    print(f"{len(records) - len(broke)} of {len(records)} held; results: {path}")
    sys.exit(1 if broke else 0)


if __name__ == "__main__":
    main()
