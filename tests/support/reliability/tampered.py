"""Tampered folders: an extraction folder from elsewhere (another lab, a download) is input, not a
trusted file. Each scenario copies a real extraction, tampers with it the way issue 19's probe did
(a video group named '..', ids and shard names that climb out of the folder or are absolute,
soft and external HDF5 links, a FIFO named as a shard, a shard of another extraction, JSON nested
100,000 deep, config values of the wrong type), runs the commands that read it, and checks that
each refuses in one line with its documented status (2: bad input; verify 3: problems found) and
that nothing outside the command's own --out changed: a canary file, a canary folder and the
victim paths the tampered names point at, beside the folder, are compared before and after
(a snapshot of the whole scenario tree). Manifests with control characters in an id, videos
that are symlinks out of the video root, and checkpoints whose tensors do not fit their config
are here too.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Callable

import h5py

from flowprep.format.folder import ExtractionFolder
from tests.support.cli import FLOWPREP, TWOSTREAM, run
from tests.support.reliability.common import VIDEOS, Record, one_line
from tests.support.videos import directions, make_videos

COMMAND_TIMEOUT = 120  # a FIFO opened by mistake would hang a reader forever: a timeout is a failed promise


# --- the folder and the commands ----------------------------------------------------------------
def extract_args(manifest: Path, out: Path, size: str = "64x48") -> list:
    return [*FLOWPREP, "extract", "--manifest", manifest, "--out", out, "--flow", "farneback", "--size", size,
            "--workers", "1"]


def base_extraction(work: Path) -> tuple[Path, Path, Path]:
    """A small real extraction (4 videos, 2 of them test) and a foreign one: the same videos at
    another size, i.e. another config. Returns (manifest, folder, foreign folder)."""
    manifest = make_videos(work / "videos", directions(4), frames=8, **VIDEOS)
    folder, foreign = work / "base", work / "foreign"
    for out, size in ((folder, "64x48"), (foreign, "48x48")):
        if not (out / "index.json").exists():
            done = run(extract_args(manifest, out, size))
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-2000:])
    return manifest, folder, foreign


def train_args(folder: Path, out: Path) -> list:
    return [*TWOSTREAM, "train", folder, "--out", out, "--stream", "spatial", "--crop-size", "32",
            "--epochs", "1", "--batch-size", "2", "--loader-workers", "0", "--threads", "1", "--val-every", "0"]


def snapshot(root: Path, own: list[Path]) -> dict[str, tuple]:
    """Every path under `root` (symlinks not followed, nothing opened) but the commands' own
    --out folders: kind, size, modification time, link target."""
    own_real = [os.path.abspath(p) for p in own]
    seen = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        if any(folder == o or folder.startswith(o + os.sep) for o in own_real):
            dirs[:] = []
            continue
        for name in dirs + files:
            path = os.path.join(folder, name)
            if any(path == o for o in own_real):
                continue
            st = os.lstat(path)
            link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
            seen[os.path.relpath(path, root)] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns, link)
    return seen


def edit_index(folder: Path, change: Callable[[dict], None]) -> None:
    path = folder / "index.json"
    data = json.loads(path.read_text())
    change(data["videos"])
    path.write_text(json.dumps(data))


def first_shard(folder: Path) -> Path:
    return sorted(folder.glob("shard-*.h5"))[0]


def nested(depth: int = 100_000) -> str:
    return "[" * depth + "]" * depth


# --- the tampering ------------------------------------------------------------------------------
def dotdot_group(case: Path, folder: Path, foreign: Path) -> None:
    """A video group named '..' (HDF5 allows it) and the index calling it so."""
    with h5py.File(first_shard(folder), "a") as f:
        f["videos"].move("v0", "..")
    edit_index(folder, lambda v: v.update({"..": v.pop("v0")}))


def climbing_id(case: Path, folder: Path, foreign: Path) -> None:
    """'../victim' in index.json only: the export's `<id>.part` would be the victim folder."""
    (case / "victim.part").mkdir()
    (case / "victim.part" / "keep.txt").write_text("victim\n")
    edit_index(folder, lambda v: v.update({"../victim": v.pop("v0")}))


def absolute_id_soft_link(case: Path, folder: Path, foreign: Path) -> None:
    """An absolute id, and a soft link at that absolute path in the shard to a real video."""
    victim = case / "victim_abs"
    victim.mkdir()
    (victim / "keep.txt").write_text("victim\n")
    with h5py.File(first_shard(folder), "a") as f:
        f.require_group(str(victim.parent))
        f[str(victim)] = h5py.SoftLink("/videos/v0")
    edit_index(folder, lambda v: v.update({str(victim): v.pop("v0")}))


def link_groups(case: Path, folder: Path, foreign: Path) -> None:
    """Video groups that are links: a soft link to another video, an external link to another file."""
    other = case / "elsewhere.h5"
    shutil.copy(first_shard(foreign), other)
    with h5py.File(first_shard(folder), "a") as f:
        f["videos"]["alias"] = h5py.SoftLink("/videos/v1")
        f["videos"]["external"] = h5py.ExternalLink(str(other), "/videos/v1")
    shard = first_shard(folder).name

    def add(v: dict) -> None:
        v["alias"] = dict(v["v1"], shard=shard)
        v["external"] = dict(v["v1"], shard=shard)
    edit_index(folder, add)


def fifo_shard(case: Path, folder: Path, foreign: Path) -> None:
    """A FIFO under a shard's name, and the index naming it."""
    os.mkfifo(folder / "shard-00077.h5")
    edit_index(folder, lambda v: v["v0"].update(shard="shard-00077.h5"))


def climbing_shard(case: Path, folder: Path, foreign: Path) -> None:
    """index.json naming '../evil.h5', a shard beside the folder."""
    shutil.copy(first_shard(folder), case / "evil.h5")
    edit_index(folder, lambda v: [e.update(shard="../evil.h5") for e in v.values()])


def absolute_shard(case: Path, folder: Path, foreign: Path) -> None:
    shutil.copy(first_shard(folder), case / "evil.h5")
    edit_index(folder, lambda v: [e.update(shard=str(case / "evil.h5")) for e in v.values()])


def foreign_shard(case: Path, folder: Path, foreign: Path) -> None:
    """A shard of another extraction (another size) dropped into the folder, not indexed."""
    shutil.copy(first_shard(foreign), folder / "shard-00050.h5")


def foreign_staging_file(case: Path, folder: Path, foreign: Path) -> None:
    """Another extraction's videos (another size) dropped into staging/ as a finished video: a
    resume packed them into the folder's next shard under its own config."""
    (folder / "staging").mkdir(exist_ok=True)
    shutil.copy(first_shard(foreign), folder / "staging" / "w9.h5")


def foreign_shard_indexed(case: Path, folder: Path, foreign: Path) -> None:
    """The same, and an index that lists its videos (as a re-run used to make)."""
    foreign_shard(case, folder, foreign)
    with h5py.File(folder / "shard-00050.h5", "a") as f:
        f["videos"].move("v0", "w0")

    def add(v: dict) -> None:
        v["w0"] = dict(v["v0"], shard="shard-00050.h5")
    edit_index(folder, add)


def nested_index(case: Path, folder: Path, foreign: Path) -> None:
    (folder / "index.json").write_text('{"format_version": 1, "videos": ' + nested() + "}")


def nested_config(case: Path, folder: Path, foreign: Path) -> None:
    (folder / "config.json").write_text('{"format_version": 1, "extract": ' + nested() + "}")


def config_types(value: object) -> Callable[[Path, Path, Path], None]:
    def tamper(case: Path, folder: Path, foreign: Path) -> None:
        data = json.loads((folder / "config.json").read_text())
        key = "width" if isinstance(value, str) else "height"
        data["extract"][key] = value
        (folder / "config.json").write_text(json.dumps(data))
    return tamper


# name -> (tampering, {command: expected exit status}); commands: export (--overwrite), train,
# verify, inspect, extract (the same command that made the folder: a resume)
TAMPERED: dict[str, tuple[Callable, dict[str, int]]] = {
    "a video group named '..'": (dotdot_group, {"export": 2, "train": 2, "verify": 3}),
    "'../victim' as an id in index.json only": (climbing_id, {"export": 2, "train": 2, "verify": 3}),
    "an absolute id and an HDF5 soft link": (absolute_id_soft_link, {"export": 2, "train": 2, "verify": 3}),
    "soft and external links as video groups": (link_groups, {"export": 3, "verify": 3}),
    "a FIFO named as a shard": (fifo_shard, {"export": 2, "train": 2, "verify": 3, "inspect": 2}),
    "'../evil.h5' as a shard name": (climbing_shard, {"export": 2, "train": 2, "verify": 3}),
    "an absolute shard name": (absolute_shard, {"export": 2, "train": 2, "verify": 3}),
    "a shard of another extraction": (foreign_shard, {"extract": 2, "verify": 3, "inspect": 2}),
    "a staging file of another extraction": (foreign_staging_file, {"extract": 2}),
    "a shard of another extraction, indexed": (foreign_shard_indexed, {"export": 2, "train": 2, "verify": 3}),
    "index.json nested 100,000 deep": (nested_index, {"export": 2, "train": 2, "verify": 3, "inspect": 0}),
    "config.json nested 100,000 deep": (nested_config, {"export": 2, "train": 2, "verify": 3, "extract": 2}),
    "config.json width \"112\"": (config_types("112"), {"train": 2, "verify": 3}),
    "config.json height [112]": (config_types([112]), {"train": 2, "verify": 3}),
}


def tampered_folder(work: Path, kind: str) -> Record:
    """One tampered folder: each command's status and one-line refusal, and nothing outside its --out changed."""
    tamper, expected = TAMPERED[kind]
    manifest, base, foreign = base_extraction(work)
    case = work / "tampered" / kind.translate({ord(c): "_" for c in " '\"./,[]"})
    shutil.rmtree(case, ignore_errors=True)
    case.mkdir(parents=True)
    folder = case / "folder"
    shutil.copytree(base, folder)
    (case / "canary.txt").write_text("canary\n")
    (case / "canary_dir").mkdir()
    (case / "canary_dir" / "inside.txt").write_text("canary\n")
    tamper(case, folder, foreign)
    commands = {"export": ([*FLOWPREP, "export-rawframes", folder, "--out", case / "out", "--workers", "1",
                            "--overwrite"], case / "out"),
                "train": (train_args(folder, case / "run"), case / "run"),
                "verify": ([*FLOWPREP, "verify", folder, "--quick"], None),
                "inspect": ([*FLOWPREP, "inspect", folder], None),
                "extract": (extract_args(manifest, folder), folder)}
    outcomes = []
    held = True
    for name, status in expected.items():
        cmd, own = commands[name]
        before = snapshot(case, [p for p in (own,) if p is not None])
        try:
            result = run(cmd, timeout=COMMAND_TIMEOUT)
        except Exception as exc:  # subprocess.TimeoutExpired: it hung (a FIFO opened)
            held = False
            outcomes.append(f"{name}: {type(exc).__name__}")
            continue
        after = snapshot(case, [p for p in (own,) if p is not None])
        changed = sorted(set(before.items()) ^ set(after.items()))
        ok = result.returncode == status and "Traceback" not in result.stderr and not changed
        if status == 2:
            ok = ok and one_line(result)
        if name == "verify":
            ok = ok and "all well" not in result.stdout
        held = held and ok
        line = (result.stderr.strip().splitlines() or result.stdout.strip().splitlines() or [""])[-1]
        outcomes.append(f"{name}: {result.returncode}{'' if ok else ' (BROKE)'}"
                        f"{f', changed {changed[0][0]}' if changed else ''}: {line[:140]}")
    return Record("tampered folder", kind, held, " | ".join(outcomes))


def tampered_folders(work: Path, kinds: tuple[str, ...] = tuple(TAMPERED)) -> list[Record]:
    return [tampered_folder(work, kind) for kind in kinds]


# --- names and symlinks from the user's side ----------------------------------------------------
def control_character_ids(work: Path) -> list[Record]:
    """Manifest ids with an ESC sequence, a newline, a carriage return: refused at the manifest,
    exit 2, one line naming the line, the character escaped (nothing raw reaches the terminal)."""
    root = work / "control_ids"
    shutil.rmtree(root, ignore_errors=True)
    make_videos(root, directions(1), frames=4, **VIDEOS)
    records = []
    for kind, video_id in (("ESC sequence", "v\x1b[2J\x1b[31mred"), ("newline", '"v\nforged log line"'),
                           ("carriage return", '"v\rX"'), ("bidi override", "v\u202eevil")):
        manifest = root / f"{kind.replace(' ', '_')}.csv"
        manifest.write_text(f"video_id,path,label\n{video_id},v0.avi,0\n", encoding="utf-8")
        result = run(extract_args(manifest, root / "out"))
        raw = any(c in result.stderr for c in "\x1b\r\u202e") or len(result.stderr.strip().splitlines()) != 1
        held = result.returncode == 2 and one_line(result) and "line 2" in result.stderr and not raw
        records.append(Record("tampered folder", f"manifest id with a {kind}", held,
                              result.stderr.strip().encode("unicode_escape").decode()[-200:]))
    return records


def video_symlinks(work: Path) -> list[Record]:
    """A video in the root that is a symlink to a video outside it: a failures record (exit 3)
    unless --follow-symlinks; a symlink inside the root is followed as before."""
    root = work / "symlinks"
    shutil.rmtree(root, ignore_errors=True)
    make_videos(root / "outside", directions(1), frames=6, **VIDEOS)
    videos = root / "videos"
    videos.mkdir()
    (videos / "out.avi").symlink_to(root / "outside" / "v0.avi")
    shutil.copy(root / "outside" / "v0.avi", videos / "real.avi")
    (videos / "in.avi").symlink_to(videos / "real.avi")
    manifest = videos / "manifest.csv"
    manifest.write_text("video_id,path,label\nout,out.avi,0\nin,in.avi,0\n")
    refused = run(extract_args(manifest, root / "o1"))
    folder = ExtractionFolder(root / "o1")
    failures = {f.video_id: f.reason for f in folder.read_failures()} if folder.failures_path.exists() else {}
    index = folder.read_index() if folder.index_path.exists() else {}
    # the refused video is a failure of this run, not one an earlier run did
    counted = "1 extracted now, 0 already done, 1 failed" in refused.stdout + refused.stderr
    held = (refused.returncode == 3 and "out" in failures and "--follow-symlinks" in failures["out"]
            and "in" in index and counted and "Traceback" not in refused.stderr)
    records = [Record("tampered folder", "a video symlink out of the video root", held,
                      failures.get("out", refused.stderr.strip()[-200:])[:200])]
    followed = run([*extract_args(manifest, root / "o2"), "--follow-symlinks"])
    index = ExtractionFolder(root / "o2").read_index() if (root / "o2" / "index.json").exists() else {}
    records.append(Record("tampered folder", "the same with --follow-symlinks", followed.returncode == 0
                          and set(index) == {"out", "in"}, followed.stderr.strip()[-200:]))
    return records


def mismatched_checkpoints(work: Path) -> list[Record]:
    """A checkpoint whose weights are a resnet34's under a resnet18 config, or whose classifier
    has more outputs than its classes: `evaluate` and `train --resume` refuse in one line; one
    whose optimizer state does not fit the model: `train --resume` refuses in one line."""
    import torch

    from twostream.streams.models import build_model

    manifest, base, _ = base_extraction(work)
    root = work / "checkpoints"
    shutil.rmtree(root, ignore_errors=True)
    trained = run(train_args(base, root / "run"))
    if trained.returncode != 0:
        raise RuntimeError(trained.stderr[-2000:])
    state = torch.load(root / "run" / "checkpoint.pt", map_location="cpu", weights_only=True)
    classes = state["num_classes"]
    cases = {"resnet34 weights under a resnet18 config": build_model("resnet34", 3, classes, 0.5).state_dict(),
             f"a {classes + 6}-output classifier in a {classes}-class checkpoint":
                 {**state["model"], "classifier.weight": torch.zeros(classes + 6, state["model"]["classifier.weight"]
                                                                     .shape[1]),
                  "classifier.bias": torch.zeros(classes + 6)}}
    records = []
    for kind, weights in cases.items():
        run_dir = root / kind.split()[1]
        shutil.copytree(root / "run", run_dir)
        torch.save({**state, "model": weights}, run_dir / "checkpoint.pt")
        evaluate = run([*TWOSTREAM, "evaluate", run_dir, "--extraction", base,
                        "--subset", "train", "--clips", "1", "--crops", "center", "--loader-workers", "0",
                        "--threads", "1", "--out", root / "scores"])
        resume = run([*train_args(base, run_dir), "--resume"])
        results = {"evaluate": evaluate, "train --resume": resume}
        held = all(r.returncode == 2 and one_line(r) and "checkpoint.pt" in r.stderr for r in results.values())
        records.append(Record("tampered folder", f"checkpoint: {kind}", held,
                              " | ".join(f"{n}: {r.returncode}: {r.stderr.strip()[-150:]}" for n, r in results.items())))
    # the optimizer's state is read by a resume alone: a momentum buffer of another shape loaded
    # silently and the first step died with a RuntimeError traceback
    run_dir = root / "optimizer"
    shutil.copytree(root / "run", run_dir)
    optimizer = state["optimizer"]
    first = next(iter(optimizer["state"]))
    buffers = {name: torch.zeros(3, 1) if isinstance(v, torch.Tensor) and v.dim() else v
               for name, v in optimizer["state"][first].items()}
    # saved as after epoch 0, so that the resume has an epoch, and a step, to take
    torch.save({**state, "epoch": 0, "optimizer": {**optimizer, "state": {**optimizer["state"], first: buffers}}},
               run_dir / "checkpoint.pt")
    resume = run([*train_args(base, run_dir), "--resume"])
    records.append(Record("tampered folder", "checkpoint: an optimizer buffer of another shape",
                          resume.returncode == 2 and one_line(resume) and "checkpoint.pt" in resume.stderr,
                          f"train --resume: {resume.returncode}: {resume.stderr.strip()[-150:]}"))
    return records
