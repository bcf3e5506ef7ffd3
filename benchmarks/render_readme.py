"""Put the benchmark figures into README.md and the docs pages, so none is typed by hand.

    make readme-figures

Reads benchmarks/results/<name>.json (written by the bench-* targets) and the demos' reports
(out/demo/runs/report/table.json, written by `make demo`, and those of make demo-*), and replaces
the text between `<!-- BEGIN <name> -->` and `<!-- END <name> -->` with a table, on every page of
PAGES that holds that block: the demo's table in README.md, the benchmarks in docs/benchmarks.md,
the reliability counts in docs/reliability.md, the other demos in docs/demo.md and docs/training.md.
"""
from __future__ import annotations

import json
import re
import statistics
import sys

from common import REPO, RESULTS_DIR


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _source(data: dict, command: str) -> str:
    return f"\n\n`{command}`, {data['date']}, {data['machine']}."


def flow_params(data: dict) -> str:
    rows = [[r["method"], ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "(flowprep defaults)",
             f"{r['epe']:.2f}", f"{r['fields_per_s']:.2f}", r["note"]] for r in data["rows"]]
    return _table(["method", "parameters", "FlyingChairs EPE (px)", "flow fields/s at 340x256, 1 thread", "note"], rows) \
        + _source(data, "make bench-flow-params")


def codecs(data: dict) -> str:
    rows = [[f"`{name}`", f"{r['rgb_kB_per_frame']:.1f}", f"{r['flow_kB_per_field']:.1f}", r["rgb_reads_per_s"],
             r["flow_reads_per_s"],
             f"{r['flow_error_px']:.4f}", f"{r['flow_error_max_px']:.2f}", f"{r['flow_values_changed']:.1%}"]
            for name, r in data["codecs"].items()]
    return _table(["codec", "RGB kB/frame", "flow kB/field", "RGB reads/s", "flow reads/s", "flow error, mean (px)",
                   "flow error, max (px)", "flow values changed"], rows) \
        + _source(data, "make bench-codecs")


def _rate(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def extract(data: dict) -> str:
    rows = []
    for method, r in data["methods"].items():
        # how much OpenCV's own threads speed the plain loop up over the backend's 1-thread rate
        threading = statistics.median(run["plain"] / run["backend"] for run in r["runs"])
        per_repeat = ", ".join(f"{run['two'] / run['plain']:.2f}" for run in r["runs"])
        rows.append([method, _rate(r["backend_single_thread"]), f"{_rate(r['pipeline_1_worker'])} ({r['efficiency_1']:.0%})",
                     f"{_rate(r['pipeline_2_workers'])} ({r['efficiency_2']:.0%})",
                     f"{_rate(r['plain_loop'])} ({r['plain_loop_threads']} threads: {threading:.2f}x 1 thread)",
                     f"**{r['speedup_vs_plain_loop']:.2f}x** ({per_repeat})",
                     f"{r['flowprep_bytes_per_frame'] / 1e3:.1f} / {r['plain_bytes_per_frame'] / 1e3:.1f}",
                     f"{r['flowprep_files'] } / {r['plain_files_per_video']:.0f} per video"])
    header = ["backend", "flow alone, 1 thread", "pipeline, 1 worker (of backend)", "pipeline, 2 workers (of 2x backend)",
              "plain loop", "pipeline / plain loop (each repeat)", "kB per frame: shards / plain", "files: shards in total / plain"]
    users = "".join(
        f" Against the plain loop with OpenCV's default {method} parameters "
        f"({', '.join(f'{k}={v}' for k, v in r['opencv_params'].items())}), which mmaction2's script and denseflow "
        f"run with: {_rate(r['plain_loop_opencv_params'])} pairs/s, so the pipeline with its own defaults is "
        f"**{r['speedup_vs_plain_loop_opencv_params']:.2f}x** faster."
        for method, r in data["methods"].items() if "plain_loop_opencv_params" in r)
    return _table(header, rows) + "\n\nRates in frame pairs per second (each pair: forward and backward flow), " \
        f"median of {data['repeats']} runs; ratios are medians of the ratios within each run." + users \
        + _source(data, "make bench-extract")


def train(data: dict) -> str:
    loader = data["loader"]
    rows = []
    for name, warm in loader["results"]["warm"].items():
        cold, size = loader["results"]["cold"][name], data["storage"][name]
        rows.append([name, f"{warm['median_samples_per_s']:.0f} (**{warm['ratio_to_tree']:.2f}x**)",
                     f"{cold['median_samples_per_s']:.0f} ({cold['ratio_to_tree']:.2f}x)", f"{size['files']:,}",
                     f"{size['bytes'] / 1e6:.1f}", f"{size['flow_forward_bytes'] / 1e6:.1f}"])
    table = _table(["source", "warm cache, samples/s (vs tree)", "cold cache", "files", "MB in all",
                    "MB forward flow"], rows)
    training = "; ".join(f"{stream} {t['samples_per_s']:.1f} samples/s (batch {t['batch_size']}, {t['device']}, "
                         f"{t['torch_threads']} thread)" for stream, t in data["training_resnet18"].items())
    return (table + f"\n\nTemporal loader: L={loader['flow_length']}, {loader['crop']}x{loader['crop']} crops, batch "
            f"{loader['batch_size']}, {loader['workers']} workers; median of {loader['repeats']} repeats, ratios taken "
            f"within each repeat. Data: {data['data']}. ResNet-18 training: {training}."
            + _source(data, "make bench-train"))


def train_models(data: dict) -> str:
    """Training speed and peak memory per backbone, stream and decode option, against the same
    model on synthetic in-memory data, and which bounds it (bench_train.py's step 4)."""
    if "training" not in data:
        return "(this results file predates the per-backbone figures: run `make bench-train`)"
    first = data["training"][0]
    if "synthetic_samples_per_s" not in first:  # a results file from before the decode options
        rows = [[f"`{t['backbone']}`", t["stream"], _input_shape(t), f"{t['samples_per_s']:.1f}",
                 f"{t['peak_memory_mb']:,.0f}"] for t in data["training"]]
        return (_table(["backbone", "stream", "input (clip frames x crop)", "training samples/s", "peak memory, MB"],
                       rows)
                + f"\n\nBatch {first['batch_size']}, {first['device']}, {first['torch_threads']} torch thread(s); peak "
                  f"memory is the {first['peak_memory_of']} of a process measuring that row alone (torch's own "
                  f"footprint included)." + _source(data, "make bench-train"))
    rows = [[f"`{t['backbone']}`", t["stream"], _input_shape(t), t["decode_on"], f"{t['samples_per_s']:.1f}",
             f"{t['synthetic_samples_per_s']:.1f}", f"{t['real_to_synthetic']:.2f}", f"**{t['bound']}**",
             "n/a" if t["gpu_utilisation"] is None else f"{t['gpu_utilisation']:.0f} %", f"{t['peak_memory_mb']:,.0f}"]
            for t in data["training"]]
    device = first["gpu"] or first["device"]
    return (_table(["backbone", "stream", "input (clip frames x crop)", "decode on", "samples/s, real data",
                    "samples/s, synthetic data", "real / synthetic", "bound", "GPU utilisation", "peak memory, MB"],
                   rows)
            + f"\n\nBatch {first['batch_size']}, {first['batches_per_epoch']} batches an epoch, {device}, AMP "
              f"{first['amp']}, channels_last {'on' if first['channels_last'] else 'off'}, {first['torch_threads']} "
              f"torch thread(s); shards: {data['training_shards']}. Synthetic data: the loader's first batch held in "
              f"memory (the model-bound rate); the loader bounds a row whose real data reaches less than "
              f"{data['loader_bound_below']:.0%} of it. Peak memory: the {first['peak_memory_of']} of a process "
              f"measuring that row alone (torch's own footprint included)." + _source(data, "make bench-train"))


def _input_shape(t: dict) -> str:
    return f"{t['clip']} x {t['crop']}x{t['crop']}" if t["clip"] else f"{t['crop']}x{t['crop']}"


def _path(point: dict) -> str:
    """The way the iteration really ran: a kernel asked for that fell back is not reported as itself."""
    path = point.get("path", point["kernels"])
    return path if path == point["kernels"] or point["kernels"] == "auto" else f"{path} (asked: {point['kernels']})"


def _overlap(ov: dict | None) -> str:
    """check_gpu's pipeline with each batch's copies overlapped with the compute, and in turn."""
    if not ov:
        return ""
    return (f" With the batches' copies overlapped with the compute (on CUDA pinned buffers, a copy stream; "
            f"video jobs and batcher, {ov['workers']} threads, batch {ov['batch']}): "
            f"{_rate(ov['overlapped_fields_per_s'])} fields/s against {_rate(ov['serial_fields_per_s'])} in turn, "
            f"**{ov['ratio']:.2f}x** (medians of 2 runs each).")


def gpu_flow(data: dict) -> str:
    """tvl1-torch's rates by device and batch, the checks of make check-gpu, where the iterations'
    bytes and sequential iterations fall by pyramid level, the pipeline against the backend,
    OpenCV on the CPU."""
    rows = []
    for device, d in data["devices"].items():
        name = f"{device} ({d['model']})" if "model" in d else device
        for point in d.get("backend", []):
            if "error" in point:
                rows.append([name, point["kernels"], point["batch"], f"failed: {point['error'][:60]}", "", "", ""])
                continue
            share = f"{point['bandwidth_share']:.0%}" if point.get("bandwidth_share") == point.get("bandwidth_share") \
                and "bandwidth_share" in point else "n/a"
            rows.append([name, _path(point), point["batch"], _rate(point["fields_per_s"]),
                         f"{point['iterations_per_field']:.0f}" if "iterations_per_field" in point else "",
                         f"{point['bytes_per_field'] / 1e9:.2f}" if "bytes_per_field" in point else "", share])
    table = _table(["device", "iteration (as it ran)", "batch (fields)", "fields/s", "full-resolution iterations a field",
                    "GB moved a field", "of the bandwidth limit"], rows)
    notes = []
    for device, d in data["devices"].items():
        if "checks" in d:
            c = d["checks"]
            verdicts = ", ".join(f"{k} {'ok' if v.get('ok') else '**failed**'}" for k, v in c.items())
            line = f"`make check-gpu` on {device} ({d.get('model', 'CPU')}, {d.get('date', data.get('date'))}): {verdicts}"
            if "flow" in c and "mean_endpoint_difference" in c["flow"]:
                line += f"; flow against the CPU's {c['flow']['mean_endpoint_difference']:.4f} px on real pairs, path {c['flow']['path']}"
            if c.get("bandwidth", {}).get("share_of_copy"):
                b = c["bandwidth"]
                line += f"; fused iteration {b['gb_s']:.0f} GB/s, {b['share_of_copy']:.0%} of a copy's {b['copy_gb_s']:.0f} GB/s"
            notes.append(line + ".")
        levels = next((p["levels"] for p in d.get("backend", []) if p.get("levels")), None)
        if levels:
            finest, coarse = levels[0], levels[-4:]
            notes.append(f"Where the iterations are on {device} (counted): the finest level ({finest['size']}) carries "
                         f"{finest['bytes_share']:.0%} of the bytes and {finest['sequential_iterations_share']:.0%} of "
                         f"the sequential iterations; the 4 coarsest carry "
                         f"{sum(lv['bytes_share'] for lv in coarse):.1%} of the bytes and "
                         f"{sum(lv['sequential_iterations_share'] for lv in coarse):.0%} of the sequential iterations.")
        if "pipeline" in d:
            pl = d["pipeline"]
            notes.append(f"Pipeline on {device} (`flowprep extract --flow tvl1-torch --device {device}`, {pl['videos']} "
                         f"clips, {pl['pairs']} pairs, {pl['workers']} threads, batch {pl['batch']}): "
                         f"{_rate(pl['pipeline_fields_per_s'])} fields/s, **{pl['ratio']:.0%}** of the backend alone on "
                         f"the same frames ({_rate(pl['backend_fields_per_s'])} fields/s)." + _overlap(d.get("overlap")))
        if "stopping" in d:
            modes = "; ".join(f"{m['mode']}: {_rate(m['fields_per_s'])} fields/s"
                              + (f", {m['endpoint_difference']:.3f} px from the first" if i else "")
                              for i, m in enumerate(d["stopping"]))
            notes.append(f"Stopping rule on {device}: {modes}.")
        if "opencv" in d:
            o = d["opencv"]
            notes.append(f"OpenCV's tvl1 on the same machine's CPU, same parameters: {_rate(o['one_thread_fields_per_s'])} "
                         f"fields/s on 1 thread, {_rate(o['all_cores_fields_per_s'])} on all {o['cores']} cores; "
                         f"tvl1-torch per core is **{o['torch_per_core_over_opencv_per_core']:.2f}x** OpenCV's per core.")
    if not any(device.startswith("cuda") for device in data["devices"]):
        notes.append("No GPU was at hand for this run: **the GPU figures are still to be measured.** `make check-gpu` "
                     "(or `PYTHONPATH=. python benchmarks/check_gpu.py`, no install) on a machine with CUDA adds them.")
    return table + "\n\n" + "\n\n".join(notes) + _source(data, "make bench-gpu-flow")


def scale(data: dict) -> str:
    """Dask against local workers, training in 1 and 2 processes, a Kinetics-sized index."""
    e, t, i = data["extraction"], data["training"], data["index"]
    per_repeat = ", ".join(f"{r['dask'] / r['local']:.2f}" for r in e["runs"])
    rows = [["extraction, 2 local worker processes", f"{_rate(e['local_fields_per_s'])} flow fields/s", "1.00x"],
            ["extraction, Dask LocalCluster of 2 workers", f"{_rate(e['dask_fields_per_s'])} flow fields/s",
             f"**{e['dask_over_local']:.2f}x** ({per_repeat})"]]
    base = None
    for name, rate in t["samples_per_s"].items():
        base = base or rate
        rows.append([f"training, {name}", f"{rate:.1f} samples/s", f"{rate / base:.2f}x"])
    return (_table(["what", "rate", "against the first of its kind"], rows)
            + f"\n\nExtraction: {e['videos']} videos (the shared clips, each twice), {e['frames_per_video']} frames each, "
              f"Farneback at 340x256; median of {len(e['runs'])} interleaved runs, ratio per run in brackets. Training: "
              f"{t['backbone']}, {t['crop']} px crops, batch {t['batch_per_process']} a process, on the CPU. Index: "
              f"{i['videos']:,} videos over {i['shards']:,} shard files: `open_extraction` (index, config and every "
              f"shard's header) {i['open_extraction_s']:.1f} s, selecting a split's training videos and holding "
              f"out 10 % {i['select_and_hold_out_s']:.2f} s, writing the index {i['write_index_s']:.1f} s."
            + (f" Resume: `flowprep extract` on a {r['videos']:,}-video manifest with {r['staged']:,} videos finished "
               f"but not packed reaches its first new video {r['first_new_video_s']:.1f} s after its start."
               if (r := data.get("resume")) else "")
            + _source(data, "make bench-scale"))


BAD_INPUT = ("bad video", "bad manifest", "bad argument", "damaged shard", "tampered folder")


def reliability(data: dict) -> str:
    """Faults injected and bad inputs tried, by kind: how many held, videos lost, checkpoints unloadable."""
    summary, records = data["summary"], data["records"]

    def rows(faults: bool) -> list[list[object]]:
        out = []
        for kind, k in summary.items():
            if (kind in BAD_INPUT) == faults:
                continue
            held = f"{k['held']}" if k["held"] == k["tried"] else f"**{k['held']}**"
            out.append([kind, k["tried"], held, k["videos_lost"], k["checkpoints_unloadable"]])
        return out

    header = ["kind", "tried", "held", "videos lost", "checkpoints unloadable"]
    whats = {kind: ", ".join(r["what"] for r in records if r["kind"] == kind) for kind in summary if kind in BAD_INPUT}
    broken = [f"{r['kind']}: {r['what']} ({r['detail'][:120]})" for r in records if not r["held"]]
    held = sum(k["held"] for k in summary.values())
    return ("Faults injected into real runs:\n\n" + _table(header, rows(faults=True))
            + "\n\nBad input:\n\n" + _table(header, rows(faults=False))
            + "\n\n" + "\n".join(f"- {kind}s: {what}." for kind, what in whats.items())
            + f"\n\n{held} of {len(records)} held"
            + (": " + "; ".join(broken) if broken else "") + f", in {data['seconds'] / 60:.1f} min."
            + _source(data, "make bench-reliability"))


def demo(data: dict) -> str:
    """The table `make demo` printed, from its report folder's table.json."""
    from twostream.score_fusion.report_data import TableRow, fusion_sentence

    best = next(r for r in data["rows"] if r["name"] == data["best"])
    rows = [[f"**{r['name']}**" if r is best else r["name"], r["kind"], f"{100 * r['top1']:.1f}",
             f"{100 * r['mean_class_accuracy']:.1f}"] for r in data["rows"]]
    timing = ""
    if DEMO_TIMING.exists():
        t = json.loads(DEMO_TIMING.read_text())
        start = "from scratch" if t["start"] == "from-scratch" else "resuming an earlier run"
        timing = (f" That run took {t['seconds'] // 60} min {t['seconds'] % 60} s, {start}, installation excluded, "
                  f"on {t['cores']} cores ({t['date']}; `{DEMO_TIMING.relative_to(REPO)}`).")
    return (_table(["method", "kind", "top-1 %", "mean class %"], rows)
            + f"\n\n{best['videos']} test videos. {fusion_sentence([TableRow(**r) for r in data['rows']])} "
              f"From `make demo` (`{DEMO_TABLE.relative_to(REPO)}`).{timing}")


LATE_FUSIONS = ("average", "weighted", "weighted-val", "svm", "logreg")
PLACE_HEADS = ("motion", "motion-learned", "cross-attention")
SEEDED = re.compile(r"(?P<head>.+)-seed(?P<seed>\d+)$")


def heads_by_seed(rows: list[dict], prefix: str = "") -> dict[str, dict[int, float]]:
    """Each head's top-1 % by seed, from report rows named PREFIX+HEAD-seedN; a row named PREFIX+HEAD
    (no seed) is the head's seed-0 run, for the heads that have seeded rows."""
    seeds: dict[str, dict[int, float]] = {}
    for r in rows:
        match = SEEDED.match(r["name"])
        if match and match["head"].startswith(prefix):
            seeds.setdefault(match["head"][len(prefix):], {})[int(match["seed"])] = 100 * r["top1"]
    for r in rows:
        head = r["name"][len(prefix):]
        if r["name"].startswith(prefix) and head in seeds:
            seeds[head].setdefault(0, 100 * r["top1"])
    return seeds


def seed_table(seeds: dict[str, dict[int, float]]) -> tuple[str, dict[str, float]]:
    """The heads' top-1 by seed with their median, and the medians by head."""
    columns = sorted({s for runs in seeds.values() for s in runs})
    medians = {head: statistics.median(runs.values()) for head, runs in seeds.items()}
    rows = [[head] + [f"{runs[s]:.1f}" if s in runs else "" for s in columns] + [f"{medians[head]:.1f}"]
            for head, runs in seeds.items()]
    return _table(["head", *(f"seed {s} top-1 %" for s in columns), "median"], rows), medians


def place_heads_against(medians: dict[str, float], late: dict[str, float]) -> list[str]:
    """Issue 29's comparisons, by median: the motion heads against the best of mid and attention,
    cross-attention against the best late fusion (name -> top-1 %)."""
    def best(scores: dict[str, float], what: str) -> str | None:
        return f"{what}, {max(scores, key=scores.get)} {max(scores.values()):.1f}" if scores else None

    against = {"motion": best({h: m for h, m in medians.items() if h in ("mid", "attention")},
                              "the best median of mid and attention"),
               "cross-attention": best(late, "the best late fusion")}
    against["motion-learned"] = against["motion"]
    return [f"{head}'s median {medians[head]:.1f} against {against[head]}"
            for head in PLACE_HEADS if head in medians and against[head]]


def demo_3d(data: dict) -> str:
    """The table `make demo-3d` printed: the 2D streams and their average, the two clip streams,
    their late fusions and the heads on them (clip-*, seed 0); then each head with every seed
    (clip-HEAD-seedN rows) and the medians, compared with the late fusions and mid/attention."""
    rows = [[f"**{r['name']}**" if r["name"] == data["best"] else r["name"], r["kind"], f"{100 * r['top1']:.1f}",
             f"{100 * r['mean_class_accuracy']:.1f}"] for r in data["rows"] if not SEEDED.match(r["name"])]
    text = (_table(["method", "kind", "top-1 %", "mean class %"], rows)
            + f"\n\n{data['rows'][0]['videos']} test videos; spatial, temporal and average are the 2D streams, "
              "clip-* the clip streams and their fusions, the heads with seed 0.")
    seeds = heads_by_seed(data["rows"], "clip-")
    if seeds:
        table, medians = seed_table(seeds)
        late = {name: 100 * r["top1"] for r in data["rows"]
                if r["name"].startswith("clip-") and (name := r["name"][len("clip-"):]) in LATE_FUSIONS}
        text += ("\n\nThe clip streams' heads with every seed:\n\n" + table + "\n\n"
                 + "; ".join(place_heads_against(medians, late)) + ".")
    return text + f" From `make demo-3d` (`{DEMO3D_TABLE.relative_to(REPO)}`)."


DEMO_ATTENTION_TABLES = {"ResNet-18": REPO / "out" / "demo-attention" / "runs" / "resnet18" / "report" / "table.json",
                         "ViT-Tiny": REPO / "out" / "demo-attention" / "runs" / "vit" / "report" / "table.json"}


def demo_attention(data: dict) -> str:
    """The tables `make demo-attention` printed, one column per backbone pair, and how the heads
    on feature maps compare with the late fusions and the other heads of the same pair."""
    tables = {pair: json.loads(path.read_text()) for pair, path in DEMO_ATTENTION_TABLES.items() if path.exists()}
    names = list(dict.fromkeys(r["name"] for t in tables.values() for r in t["rows"]))
    cells = {pair: {r["name"]: r for r in t["rows"]} for pair, t in tables.items()}
    kinds = {r["name"]: r["kind"] for t in tables.values() for r in t["rows"]}
    rows = [[name, kinds[name]] + [f"{100 * cells[p][name]['top1']:.1f}" if name in cells[p] else "" for p in tables]
            for name in names]
    notes = []
    for pair, table in cells.items():
        def best(group):
            present = [table[n] for n in group if n in table]
            return max(present, key=lambda r: r["top1"]) if present else None

        late, other, place = best(LATE_FUSIONS), best(("mid", "attention")), best(PLACE_HEADS)
        if late and other and place:
            notes.append(f"{pair}: best head on feature maps {place['name']} {100 * place['top1']:.1f}, best of mid/"
                         f"attention {other['name']} {100 * other['top1']:.1f}, best late fusion {late['name']} "
                         f"{100 * late['top1']:.1f}")
    videos = next(iter(tables.values()))["rows"][0]["videos"]
    return (_table(["method", "kind", *(f"{p} top-1 %" for p in tables)], rows)
            + f"\n\n{videos} test videos. " + "; ".join(notes) + ". From `make demo-attention` ("
            + ", ".join(f"`{path.relative_to(REPO)}`" for path in DEMO_ATTENTION_TABLES.values()) + ").")


def demo_motion(data: dict) -> str:
    """The table `make demo-motion` printed, and its cost per training sample (bench_motion.py's
    benchmarks/results/motion.json, when there)."""
    rows = [[f"**{r['name']}**" if r["name"] == data["best"] else r["name"], r["kind"], f"{100 * r['top1']:.1f}",
             f"{100 * r['mean_class_accuracy']:.1f}"] for r in data["rows"]]
    text = (_table(["method", "kind", "top-1 %", "mean class %"], rows)
            + f"\n\n{data['rows'][0]['videos']} test videos; the fusions average the two streams' scores. From "
              f"`make demo-motion` (`{DEMOMOTION_TABLE.relative_to(REPO)}`).")
    cost_file = RESULTS_DIR / "motion.json"
    if not cost_file.exists():
        return text
    cost = json.loads(cost_file.read_text())
    streams = cost["streams"]

    def window(v: dict) -> str:
        i = v["input"]
        if i["flow_length"]:
            return f"{i['flow_length']} stored flow fields"
        on = " (layer on feature maps)" if i.get("flow_on") == "features" else ""
        return f"{i['clip']} frames {i['clip_stride']} apart{on}" if i["clip"] else "1 frame"

    cost_rows = [[name, window(v), f"{v['samples_per_s']:.1f}", f"{v['cost_vs_spatial']:.2f}x"]
                 for name, v in streams.items()]
    saved = cost["flow_extraction_saved"]
    return (text + "\n\n" + _table(["stream", "input", "training samples/s", "CPU cost per sample vs spatial"],
                                     cost_rows)
            + f"\n\nMedians of {cost['repeats']} epochs each, the streams taking turns, {cost['torch_threads']} torch "
              f"threads, loading included. The flow extraction the new streams do without, for these "
              f"{cost['videos']} videos of {cost['frames_per_video']} frames (forward and backward fields): "
              f"DIS {saved['dis']['seconds_for_the_set']:.1f} s, OpenCV TV-L1 "
              f"{saved['tvl1']['seconds_for_the_set']:.0f} s on one core."
            + _source(cost, "make demo-motion"))


def demo_learned_flow(data: dict) -> str:
    """The table `make demo-learned-flow` printed: make demo's two streams, the streams that need no
    precomputed flow, and each of those averaged with the spatial stream."""
    rows = [[f"**{r['name']}**" if r["name"] == data["best"] else r["name"], r["kind"], f"{100 * r['top1']:.1f}",
             f"{100 * r['mean_class_accuracy']:.1f}"] for r in data["rows"]]
    return (_table(["method", "kind", "top-1 %", "mean class %"], rows)
            + f"\n\n{data['rows'][0]['videos']} test videos of make demo's data; spatial and temporal are make demo's "
              f"runs, the fusions average the two streams' scores. From `make demo-learned-flow` "
              f"(`{DEMOLF_TABLE.relative_to(REPO)}`).")


def demo_heads(data: dict) -> str:
    """The table `make demo-heads` printed: each fusion head's top-1 with each seed (rows named
    HEAD-seedN) and their median, beside the late fusions of the same two streams, and how the heads
    that look at places compare with the others and with the best late fusion, by median."""
    table, medians = seed_table(heads_by_seed(data["rows"]))
    late = {r["name"]: 100 * r["top1"] for r in data["rows"] if r["name"] in LATE_FUSIONS}
    return (table + "\n\nLate fusions of the same two streams (fitted once, on the held-out videos): "
            + ", ".join(f"{name} {value:.1f}" for name, value in late.items())
            + f". {data['rows'][0]['videos']} test videos; " + "; ".join(place_heads_against(medians, late))
            + f". From `make demo-heads` (`{DEMOHEADS_TABLE.relative_to(REPO)}`).")


def predict(data: dict) -> str:
    """twostream predict on files (two protocols) and --live on a 340x256 stream, per backbone."""
    rows = [[f"files, {r['clips']} clips x {r['crops']}", "resnet18", f"{r['videos_per_s']:.3f} videos/s "
             f"({r['seconds'] / r['videos']:.1f} s a video, {r['videos']} videos)", ""] for r in data["files"]]
    rows += [[f"live, a label due every {data['every']} frames", r["backbone"],
              f"{r['frames_per_s']:.1f} frames/s, {r['labels_per_s']:.2f} labels/s", f"{r['latency_ms_median']:.0f} ms"]
             for r in data["live"]]
    best = data["largest_sustaining"] or "none"
    return _table(["what", "streams' backbone", "rate", "frame-to-label latency"], rows) \
        + f"\n\nThe largest backbone that sustains {data['target_fps']:g} frames/s live with a label a second: " \
        f"**{best}** " \
        f"({data['device']}, {data['threads']} torch threads, live {data['live_threads']}; DIS at 340x256, L={data['flow_length']}, " \
        f"{data['crop']} crops)." + _source(data, "make bench-predict")


DEMO_TABLE = REPO / "out" / "demo" / "runs" / "report" / "table.json"
DEMOMOTION_TABLE = REPO / "out" / "demo3d" / "runs" / "motion-report" / "table.json"
DEMO3D_TABLE = REPO / "out" / "demo3d" / "runs" / "report" / "table.json"
DEMOLF_TABLE = REPO / "out" / "demo" / "runs" / "learned-flow-report" / "table.json"
DEMOHEADS_TABLE = REPO / "out" / "demo" / "runs" / "heads-report" / "table.json"
DEMO_TIMING = DEMO_TABLE.with_name("timing.json")
RENDERERS = {name: (RESULTS_DIR / f"{name}.json", fn) for name, fn in
             {"flow_params": flow_params, "codecs": codecs, "extract": extract, "train": train,
              "gpu_flow": gpu_flow, "scale": scale, "reliability": reliability, "predict": predict}.items()}
RENDERERS["train_models"] = (RESULTS_DIR / "train.json", train_models)
RENDERERS["demo"] = (DEMO_TABLE, demo)
RENDERERS["demo_3d"] = (DEMO3D_TABLE, demo_3d)
RENDERERS["demo_attention"] = (DEMO_ATTENTION_TABLES["ResNet-18"], demo_attention)
RENDERERS["demo_motion"] = (DEMOMOTION_TABLE, demo_motion)
RENDERERS["demo_learned_flow"] = (DEMOLF_TABLE, demo_learned_flow)
RENDERERS["demo_heads"] = (DEMOHEADS_TABLE, demo_heads)
# the pages that hold blocks (a block's name: its renderer above); every block is on one page at least
DOCS = REPO / "docs"
PAGES = (REPO / "README.md", DOCS / "benchmarks.md", DOCS / "reliability.md", DOCS / "demo.md", DOCS / "training.md")


def main() -> None:
    found = set()
    for page in PAGES:
        found |= render_page(page)
    for name in RENDERERS.keys() - found:
        print(f"no page holds a <!-- BEGIN {name} --> ... <!-- END {name} --> block", file=sys.stderr)


def block_pattern(name: str) -> re.Pattern:
    # the block between the markers may be empty (a fresh page) or hold an earlier table
    return re.compile(rf"(<!-- BEGIN {name} -->\n)(?:.*?\n)?(<!-- END {name} -->)", re.S)


def render_page(page) -> set[str]:
    """Render every block `page` holds; returns their names."""
    text = page.read_text(encoding="utf-8")
    found = set()
    for name, (path, render) in RENDERERS.items():
        pattern = block_pattern(name)
        if not pattern.search(text):
            continue
        found.add(name)
        if not path.exists():
            print(f"no {path}; run its command first", file=sys.stderr)
            continue
        table = render(json.loads(path.read_text()))
        text = pattern.sub(lambda m: m.group(1) + table + "\n" + m.group(2), text)
    page.write_text(text, encoding="utf-8")
    print(f"updated {page}")
    return found


if __name__ == "__main__":
    main()
