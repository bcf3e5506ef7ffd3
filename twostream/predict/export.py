"""`twostream export`: a run's network (a stream's, or a fuse-features run's over both streams) as
TorchScript or ONNX, and beside it its input contract, contract.json: the input's shape, the
normalisation from the stored uint8 codes (input = code x scale + shift, per channel: what the
trainer applies on the device), the flow layout, the extraction settings that make the codes
(twostream.predict.video_input computes them from a video) and the class names of the outputs.

ONNX needs the `onnx` package (`pip install 'twostream[onnx]'`, which also brings onnxruntime to
run it); it is imported only here, when asked for.
"""
from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import torch

from runkit.files import write_text_atomic
from twostream.core.errors import DataError
from twostream.data.clip_sampling import ClipSpec
from twostream.data.paired import PairSpec
from twostream.data.transforms import RGB_MEAN, RGB_STD, flow_affine, rgb_affine
from twostream.predict.predictor import Scorer

FORMATS = ("torchscript", "onnx")
MODEL_FILES = {"torchscript": "model.torchscript.pt", "onnx": "model.onnx"}
CONTRACT_FILE = "contract.json"
ONNX_OPSET = 17


def _flow_part(spec, bound: float) -> dict:
    if isinstance(spec, ClipSpec):
        return {"kind": "flow clip", "fields": spec.clip, "field_stride": spec.stride,
                "channels": "x, y (field t is time step t)"}
    fields = "x0, y0, x1, y1, ..."
    return {"kind": "flow stack", "flow_length": spec.flow_length, "flow_stack": spec.flow_stack,
            "channels": fields + (" (in time order: backward fields before tau, forward from tau)"
                                  if spec.flow_stack == "bidirectional" else " (forward fields from the position on)"),
            "mean_vectors_restored": not spec.mean_subtraction}


def input_contract(scorer: Scorer) -> dict:
    """What the exported network takes and gives, as JSON-able data."""
    layout, bound = scorer.layout, scorer.extract.bound
    parts = [layout.spatial, layout.temporal] if isinstance(layout, PairSpec) else [layout]
    affines, described = [], []
    for spec in parts:
        channels = spec.in_channels
        if spec.stream == "spatial":
            affines.append(rgb_affine())
            described.append({"kind": "RGB frame" if not isinstance(spec, ClipSpec) else "RGB clip",
                              "channels": "R, G, B", "imagenet_mean": RGB_MEAN.tolist(),
                              "imagenet_std": RGB_STD.tolist()})
        else:
            affines.append(flow_affine(channels, bound, None, False))
            described.append(_flow_part(spec, bound))
    affine = np.concatenate(affines, axis=1)
    size = layout.crop_size
    channels = affine.shape[1]
    shape = ["N", channels, layout.clip, size, size] if isinstance(layout, ClipSpec) else ["N", channels, size, size]
    return {
        "format": "twostream-export", "format_version": 1,
        "run": str(scorer.checkpoint), "network": scorer.describe,
        "input": {"name": "input", "dtype": "float32", "shape": shape,
                  "normalisation": "input = code * scale + shift, per channel; code: the uint8 RGB value, or the "
                                   "uint8 flow code (flowprep's quantisation: code = (flow_px + bound) * 255 / "
                                   "(2 * bound), so input = flow_px / bound)",
                  "scale": affine[0].tolist(), "shift": affine[1].tolist(), "parts": described,
                  "flow_bound_px": bound},
        "output": {"name": "logits", "shape": ["N", len(scorer.class_names)],
                   "meaning": "class logits; softmax gives probabilities (the test protocol averages them over "
                              "crops and positions)",
                   "class_names": list(scorer.class_names)},
        "extraction": scorer.extract.to_dict(),
    }


def example_input(scorer: Scorer) -> torch.Tensor:
    shape = input_contract(scorer)["input"]["shape"]
    return torch.zeros([2, *shape[1:]])


def export(scorer: Scorer, fmt: str, out_dir: Path) -> tuple[Path, Path]:
    """Write the network in `fmt` and its contract into `out_dir`; (model file, contract file)."""
    if fmt not in FORMATS:
        raise DataError(f"export format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if fmt == "onnx" and importlib.util.find_spec("onnx") is None:
        raise DataError("ONNX export needs the onnx package, which is not installed: pip install 'twostream[onnx]' "
                        "(or export --format torchscript)")
    out_dir.mkdir(parents=True, exist_ok=True)
    model = scorer.model.cpu().eval()
    example = example_input(scorer)
    path = out_dir / MODEL_FILES[fmt]
    tmp = path.with_name(path.name + ".tmp")
    with torch.no_grad():
        if fmt == "torchscript":
            with warnings.catch_warnings():  # torch says TorchScript is deprecated; it is what C++ and mobile load
                warnings.simplefilter("ignore", FutureWarning)
                # the fusion model checks its input's channels in Python: fixed by the contract, as traced
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                torch.jit.trace(model, example).save(str(tmp))
        else:
            torch.onnx.export(model, (example,), str(tmp), dynamo=False, input_names=["input"],
                              output_names=["logits"], opset_version=ONNX_OPSET,
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    tmp.replace(path)
    contract = out_dir / CONTRACT_FILE
    write_text_atomic(contract, json.dumps({**input_contract(scorer), "model_file": path.name, "model_format": fmt},
                                           indent=1) + "\n")
    return path, contract
