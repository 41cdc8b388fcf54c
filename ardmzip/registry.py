"""The shipped models: `models/manifest.json` (ids, files, SHA-256, net configs, loss curves), for
images (media "image": a Model) and audio clips (media "audio": an audio_model.AudioModel).

The SHA-256 of a weights file is checked on every load; a released id never changes meaning.
The folder is found in a source checkout (repo/models) and in a normal install (ardmzip/models).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from . import ardm, exact
from .audio_model import AudioModel, AudioNetConfig, ExactAudioNet
from .errors import ModelError
from .nets import ARDMNet, NetConfig

_PKG = Path(__file__).resolve().parent


def models_dir() -> Path:
    """$ARDMZIP_MODELS if set (a folder with manifest.json), else the installed or checked-out models."""
    override = os.environ.get("ARDMZIP_MODELS")
    for candidate in ((Path(override),) if override else (_PKG / "models", _PKG.parent / "models")):
        if (candidate / "manifest.json").exists():
            return candidate
    raise ModelError(f"no manifest.json in {override}" if override else
                     "no models/manifest.json found: the installation is incomplete (reinstall ardmzip)")


def manifest() -> dict:
    return json.loads((models_dir() / "manifest.json").read_text())


@dataclass
class Model:
    """A loaded model: the net plus what the codec needs to reproduce its schedule.

    A float32 model has `net` (an ARDMNet in eval mode); an int-exact model has `exact` (an ExactNet:
    integer inputs, integer head, identical on every machine) and `net` None.
    """
    id: str
    media: str
    cfg: NetConfig
    net: ARDMNet | None
    exact: exact.ExactNet | None
    curve: tuple[int, ...]    # loss per variable, millibits, on a grid of revealed fractions
    default_budget: int
    sha256: str
    info: dict = field(repr=False)
    stage_curves: tuple[tuple[int, ...], ...] = ()  # a depth-upscaling model: one curve per stage (curve: stage 1's)

    @property
    def arithmetic(self) -> str:
        return "int-exact" if self.exact is not None else "float32"

    @property
    def curves(self) -> tuple[tuple[int, ...], ...]:
        """One loss curve per stage (a one-stage model: its curve)."""
        return self.stage_curves or (self.curve,)

    def probabilities(self, params, stage: int = 0, coarse: np.ndarray | None = None) -> np.ndarray:
        """(n, 256) float64 categorical distributions from the head outputs of n variables; stage 1 or 2
        of a depth-upscaling model (int-exact): (n, 16), of the coarse digits, or of the fine digits given
        the coarse ones (n,) (exact.digit_probabilities)."""
        if stage:
            return exact.digit_probabilities(exact.frequencies(params, self.cfg.mixtures), stage, coarse)
        if self.exact is not None:
            return exact.probabilities(params, self.cfg.mixtures)
        return ardm.probabilities(params, self.cfg.mixtures)

    @property
    def hash_prefix(self) -> bytes:
        return bytes.fromhex(self.sha256[:8])  # the 4-byte prefix stored in .ardm files


def list_models() -> dict[str, dict]:
    return manifest()["models"]


def default_model_id(media: str) -> str:
    try:
        return manifest()["defaults"][media]
    except KeyError:
        raise ModelError(f"no default model for {media} in this release") from None


@lru_cache(maxsize=8)
def load_model(model_id: str) -> Model | AudioModel:
    """Load a shipped model by id, verifying the SHA-256 of its weights against the manifest: a Model
    for an image entry, an audio_model.AudioModel for an audio one (media "audio")."""
    entries = list_models()
    if model_id not in entries:
        raise ModelError(f"unknown model '{model_id}' (this release has: {', '.join(sorted(entries))})")
    e = entries[model_id]
    path = models_dir() / e["file"]
    if not path.exists():
        raise ModelError(f"model '{model_id}': weights file {path} is missing")
    blob = path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != e["sha256"]:
        raise ModelError(f"model '{model_id}': {path.name} has SHA-256 {digest[:16]}…, "
                         f"the manifest says {e['sha256'][:16]}… (damaged or replaced weights)")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    if e["media"] == "audio":
        return _audio_model(model_id, e, ck, digest)
    cfg = NetConfig.from_dict(e["net_config"])
    net = exact_net = None
    if e.get("arithmetic", "float32") == "int-exact":
        try:
            exact_net = exact.ExactNet(cfg, ck["exact"])
        except ValueError as err:  # the exactness bound does not hold: refuse rather than risk a bad stream
            raise ModelError(f"model '{model_id}' is not exact: {err}") from None
    else:
        net = ARDMNet(cfg)
        net.load_state_dict({k: v.float() for k, v in ck["net"].items()})  # stored as float16, run as float32
        net.eval().requires_grad_(False)
    curves = tuple(tuple(int(v) for v in c) for c in e["loss_curves"]) if "loss_curves" in e else ()
    if len(curves or [None]) != cfg.stages or (cfg.stages > 1 and exact_net is None):
        raise ModelError(f"model '{model_id}': {cfg.stages} stages need as many loss curves "
                         f"(the manifest has {len(curves) or 1}) and integer arithmetic")
    return Model(id=model_id, media=e["media"], cfg=cfg, net=net, exact=exact_net,
                 curve=curves[0] if curves else tuple(int(v) for v in e["loss_curve"]),
                 default_budget=int(e["default_budget"]), sha256=digest, info=e, stage_curves=curves)


def _audio_model(model_id: str, e: dict, ck: dict, digest: str) -> AudioModel:
    """An audio manifest entry: int-exact weights {"exact": export_int(...)}, an AudioNetConfig, one
    loss curve per net-coded stage (millibits, as for images)."""
    if e.get("arithmetic") != "int-exact":
        raise ModelError(f"model '{model_id}': audio models must be int-exact, the manifest says "
                         f"{e.get('arithmetic', 'float32')}")
    cfg = AudioNetConfig.from_dict(e["net_config"])
    curves = tuple(tuple(int(v) for v in c) for c in e["loss_curves"])
    if len(curves) != cfg.stages:
        raise ModelError(f"model '{model_id}': {len(curves)} loss curves in the manifest, one per stage "
                         f"({cfg.stages}) expected")
    try:
        net = ExactAudioNet(cfg, ck["exact"])
    except ValueError as err:  # the exactness bound does not hold: refuse rather than risk a bad stream
        raise ModelError(f"model '{model_id}' is not exact: {err}") from None
    return AudioModel(cfg, curves, exact=net, default_budget=int(e["default_budget"]), id=model_id,
                      sha256=digest, info=e)


def find_model(model_id: str, hash_prefix: bytes) -> Model | AudioModel:
    """The model a file names, refusing one whose weights differ from those the file was made with."""
    model = load_model(model_id)
    if model.hash_prefix != hash_prefix:
        raise ModelError(f"file was made with model '{model_id}' weights {hash_prefix.hex()}, "
                         f"but this release has {model.hash_prefix.hex()}")
    return model


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def curve_to_ints(curve_bits: np.ndarray) -> list[int]:
    """Loss curve in bits per variable (float) -> millibits (int), the form stored in the manifest."""
    return [int(round(v * 1000)) for v in np.asarray(curve_bits, dtype=np.float64)]
