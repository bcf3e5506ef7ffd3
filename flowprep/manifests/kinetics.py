"""A manifest from Kinetics-style annotation CSVs (label,youtube_id,time_start,time_end,split).

The official Kinetics-400/600/700 CSVs (train.csv, validate.csv, test.csv) are read together:
one manifest, one split column, labels 0-based in sorted label order (as mmaction2's label
maps). Clip ids are `<youtube_id>_<time_start:06d>_<time_end:06d>`, the file stem that the
ActivityNet crawler (and most mirrors) gives each clip; where the files are found is a template
(`DEFAULT_TEMPLATE`: the crawler's <label>/<id>.mp4 layout). Kinetics' split names map onto a
manifest's: train -> train, validate/val -> test (the set papers report on), test -> unused.
Extra columns (is_cc) are ignored.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from flowprep.format.manifest import ManifestEntry, ManifestError, check_path, validate_video_id

COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")
PARTS = {"train": "train", "validate": "test", "val": "test", "test": "unused"}
SPLIT_COLUMN = "split1"
DEFAULT_TEMPLATE = "{label}/{youtube_id}_{time_start:06d}_{time_end:06d}.mp4"
TEMPLATE_FIELDS = ("label", "label_dir", "youtube_id", "time_start", "time_end", "split")


class KineticsError(ManifestError):
    pass


@dataclass(frozen=True)
class KineticsRow:
    label: str
    youtube_id: str
    time_start: int
    time_end: int
    split: str
    where: str  # file and line, for errors

    @property
    def clip_id(self) -> str:
        return f"{self.youtube_id}_{self.time_start:06d}_{self.time_end:06d}"

    def fields(self) -> dict[str, object]:
        # label_dir: mmaction2 renames class folders with spaces to underscores
        return {"label": self.label, "label_dir": self.label.replace(" ", "_"), "youtube_id": self.youtube_id,
                "time_start": self.time_start, "time_end": self.time_end, "split": self.split}


def check_template(template: str) -> str:
    """Raise ValueError naming the bad field unless the path template formats a sample row."""
    sample = KineticsRow("abseiling", "0347ZoDXyP0", 14, 24, "train", "")
    try:
        path = template.format(**sample.fields())
    except KeyError as exc:
        raise ValueError(f"unknown field {{{exc.args[0]}}} in path template {template!r}; "
                         f"accepted: {', '.join(TEMPLATE_FIELDS)}") from None
    except (ValueError, IndexError) as exc:
        raise ValueError(f"bad path template {template!r}: {exc}") from None
    problem = "path is empty" if not path else check_path(path)
    if problem:  # the manifest it writes would be refused by every reader
        raise ValueError(f"path template {template!r} gives a bad path: {problem}")
    return template


def _time(text: str, at: str, name: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value != int(value):
        raise KineticsError(f"{at}: {name} {text!r} is not a whole number of seconds >= 0")
    return int(value)


def parse_kinetics_csv(text: str, where: str) -> list[KineticsRow]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise KineticsError(f"{where} is empty: expected a header {','.join(COLUMNS)}")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise KineticsError(f"{where} line 1: header lacks {', '.join(missing)}; expected {','.join(COLUMNS)}, "
                            f"got {','.join(header)}")
    col = {name: header.index(name) for name in COLUMNS}
    out = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        at = f"{where} line {lineno}"
        if len(row) != len(header):
            raise KineticsError(f"{at}: {len(row)} columns, header has {len(header)}")
        cell = {name: row[i].strip() for name, i in col.items()}
        if not cell["label"]:
            raise KineticsError(f"{at}: empty label (unlabelled test rows cannot go in a manifest)")
        if cell["split"] not in PARTS:
            raise KineticsError(f"{at}: split {cell['split']!r}; accepted: {', '.join(PARTS)}")
        out.append(KineticsRow(cell["label"], cell["youtube_id"], _time(cell["time_start"], at, "time_start"),
                               _time(cell["time_end"], at, "time_end"), cell["split"], at))
    return out


def build_kinetics(rows: list[KineticsRow], template: str = DEFAULT_TEMPLATE) -> list[ManifestEntry]:
    check_template(template)
    if not rows:
        raise KineticsError("the annotation files list no clips")
    label_of = {name: i for i, name in enumerate(sorted({r.label for r in rows}))}
    entries, seen = [], {}
    for r in sorted(rows, key=lambda r: (r.label, r.clip_id)):
        problem = validate_video_id(r.clip_id)
        if problem:
            raise KineticsError(f"{r.where}: {problem}")
        if r.clip_id in seen:
            raise KineticsError(f"{r.where}: duplicate clip {r.clip_id!r}, already at {seen[r.clip_id]}")
        seen[r.clip_id] = r.where
        entries.append(ManifestEntry(r.clip_id, template.format(**r.fields()), label_of[r.label], r.label,
                                     ((SPLIT_COLUMN, PARTS[r.split]),)))
    return entries


def kinetics_manifest(csv_paths: list[Path], template: str = DEFAULT_TEMPLATE) -> list[ManifestEntry]:
    rows = []
    for path in csv_paths:
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise KineticsError(f"annotation file {path} cannot be read: {exc.strerror or exc}") from None
        rows.extend(parse_kinetics_csv(text, str(path)))
    return build_kinetics(rows, template)
