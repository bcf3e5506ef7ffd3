"""Put the benchmark figures into README.md, so none is typed by hand.

    make readme-figures

Reads benchmarks/results/<name>.json (written by the bench-* targets) and replaces the text
between `<!-- BEGIN <name> -->` and `<!-- END <name> -->` in README.md with a table.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from common import REPO, RESULTS_DIR


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _source(data: dict, command: str) -> str:
    return f"\n\n`{command}`, {data['date']}, {data['machine']}."


def flow_params(data: dict) -> str:
    rows = [[r["method"], ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "(flowprep defaults)",
             f"{r['epe']:.2f}", f"{r['pairs_per_s']:.2f}", r["note"]] for r in data["rows"]]
    return _table(["method", "parameters", "FlyingChairs EPE (px)", "pairs/s at 340x256, 1 thread", "note"], rows) \
        + _source(data, "make bench-flow-params")


def codecs(data: dict) -> str:
    rows = [[f"`{name}`", r["rgb_kB_per_frame"], r["flow_kB_per_field"], r["rgb_reads_per_s"], r["flow_reads_per_s"],
             f"{r['flow_error_px']:.4f}"] for name, r in data["codecs"].items()]
    return _table(["codec", "RGB kB/frame", "flow kB/field", "RGB reads/s", "flow reads/s", "flow error (px)"], rows) \
        + _source(data, "make bench-codecs")


def extract(data: dict) -> str:
    rows = []
    for method, r in data["methods"].items():
        rows.append([method, r["backend_single_thread"], f"{r['pipeline_1_worker']} ({r['efficiency_1']:.0%})",
                     f"{r['pipeline_2_workers']} ({r['efficiency_2']:.0%})",
                     f"{r['plain_loop']} ({r['plain_loop_threads']} threads)", f"**{r['speedup_vs_plain_loop']:.2f}x**",
                     f"{r['flowprep_bytes_per_frame'] / 1e3:.1f} / {r['plain_bytes_per_frame'] / 1e3:.1f}",
                     f"{r['flowprep_files'] } / {r['plain_files_per_video']:.0f} per video"])
    header = ["backend", "flow alone, 1 thread", "pipeline, 1 worker (of backend)", "pipeline, 2 workers (of 2x backend)",
              "plain loop", "pipeline / plain loop", "kB per frame: shards / plain", "files: shards in total / plain"]
    return _table(header, rows) + "\n\nRates in frame pairs per second (each pair: forward and backward flow), " \
        f"median of {data['repeats']} runs." + _source(data, "make bench-extract")


RENDERERS = {"flow_params": flow_params, "codecs": codecs, "extract": extract}


def main() -> None:
    readme = REPO / "README.md"
    text = readme.read_text(encoding="utf-8")
    for name, render in RENDERERS.items():
        path = RESULTS_DIR / f"{name}.json"
        pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(\n<!-- END {name} -->)", re.S)
        if not pattern.search(text):
            continue
        if not path.exists():
            print(f"no {path}; run its benchmark first", file=sys.stderr)
            continue
        table = render(json.loads(path.read_text()))
        text = pattern.sub(lambda m: m.group(1) + table + m.group(2), text)
    readme.write_text(text, encoding="utf-8")
    print(f"updated {readme}")


if __name__ == "__main__":
    main()
