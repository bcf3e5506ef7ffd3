"""What `twostream predict` prints and writes: the top-k classes of each video as a table, and
OUT/predictions.json and OUT/predictions.csv (one row per video and rank; a video that could
not be read has one row with its reason)."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from runkit.files import write_json_atomic, write_text_atomic
from twostream.predict.predictor import Failure, Prediction

JSON_FILE, CSV_FILE = "predictions.json", "predictions.csv"
CSV_COLUMNS = ("video", "rank", "class", "score", "error")


def table(results: list[Prediction | Failure], top_k: int) -> str:
    """One line per video: its best class and score, then the next ones; failures with their reason."""
    width = max([len(r.source) for r in results] + [5])
    lines = [f"{'video':<{width}}  top-{top_k} (score)"]
    for r in results:
        if isinstance(r, Failure):
            lines.append(f"{r.source:<{width}}  cannot be read: {r.reason}")
        else:
            lines.append(f"{r.source:<{width}}  " + ", ".join(f"{name} ({score:.3f})" for name, score in r.top(top_k)))
    return "\n".join(lines)


def records(results: list[Prediction | Failure], top_k: int) -> list[dict]:
    return [{"video": r.source, "error": r.reason} if isinstance(r, Failure) else
            {"video": r.source, "label": r.label, "score_kind": r.score_kind,
             "top": [{"class": name, "score": score} for name, score in r.top(top_k)]} for r in results]


def csv_text(results: list[Prediction | Failure], top_k: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in results:
        if isinstance(r, Failure):
            writer.writerow([r.source, "", "", "", r.reason])
        else:
            for rank, (name, score) in enumerate(r.top(top_k), 1):
                writer.writerow([r.source, rank, name, f"{score:.6g}", ""])
    return out.getvalue()


def write(out_dir: Path, results: list[Prediction | Failure], top_k: int, about: dict) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / JSON_FILE, {**about, "videos": records(results, top_k)})
    write_text_atomic(out_dir / CSV_FILE, csv_text(results, top_k))
    return [out_dir / JSON_FILE, out_dir / CSV_FILE]
