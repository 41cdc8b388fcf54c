"""Write golden .ardm files for a released model (run once per new model id and format version, as
files of it are written by default; never rewrite old ones).

    python tests/make_golden.py MODEL_ID
"""
import io
import sys
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image

from ardmzip import api, container
from ardmzip.audio import audio_from_array
from ardmzip.registry import load_model
from test_interp import _high_band, _oversampled  # tests/ is on the path: run as python tests/make_golden.py

HERE = Path(__file__).parent
GOLDEN = HERE / "data" / "golden"


def image_cases() -> list[tuple[str, np.ndarray]]:
    """RGB and grey crops of the test photo, a crop upscaled 3× (smooth: coded with adapted steps,
    format version 5 then, by int-exact one-stage models, where some steps use mode 1), and a crop
    upscaled 4× and through JPEG at quality 75 (format version 6: steps split by phase and block edge)."""
    photo = np.asarray(Image.open(HERE / "data" / "crop64.png").convert("RGB"))
    grey = np.asarray(Image.fromarray(photo[20:36, 8:24]).convert("L"))
    upscaled = np.asarray(Image.fromarray(photo[8:40, 8:40]).resize((96, 96), Image.BICUBIC))
    return [("rgb", photo[5:29, 11:31]), ("grey", grey), ("upscaled", upscaled),
            ("jpeg", through_jpeg(Image.fromarray(photo[8:40, 8:40]).resize((128, 128), Image.BICUBIC), 75))]


def through_jpeg(img: Image.Image, quality: int) -> np.ndarray:
    """img's pixels after a JPEG round trip (Pillow's defaults: colour subsampled 2×2, 8×8 blocks)."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def image_options(kind: str, model_id: str) -> dict:
    m = load_model(model_id)
    return {"adapt": True} if kind in ("upscaled", "jpeg") and m.exact is not None and m.cfg.stages == 1 else {}


def audio_cases() -> list[tuple[str, np.ndarray]]:
    """16-bit mono speech, a 24-bit stereo clip made from it (a deterministic low byte), 16-bit stereo
    whose channels differ by a little (format version 3 codes the second as its difference), and quiet
    24-bit mono (the speech as 24-bit values: format version 4 interpolates its low bytes), and smooth
    16-bit mono (a few low partials and a little noise: a model with max_taps 64 fits filters longer than
    16 taps to it), and a resonance just above a quarter of the sample rate (a dyadic-split model's second
    half reads it from the first half)."""
    speech = soundfile.read(HERE / "data" / "speech8k.wav", dtype="int16", always_2d=True)[0]
    hi = speech[3000:4500].astype(np.int32)
    stereo = np.concatenate([hi * 256 + (np.arange(1500)[:, None] * 37) % 256, (hi // 2) * 256], axis=1)
    near = np.concatenate([hi, hi + (np.arange(1500)[:, None] * 7) % 5 - 2], axis=1)
    smooth = _oversampled(8000, 1, seed=64, noise=0.5).astype(np.int16)
    return [("mono16", np.ascontiguousarray(speech[2000:5000])), ("stereo24", stereo.astype(np.int32)),
            ("stereo16", near.astype(np.int16)), ("quiet24", hi[:1000].astype(np.int32)), ("smooth16", smooth),
            ("highband16", _high_band(6000, seed=7)[:, None].astype(np.int16))]


def main(model_id: str) -> None:
    audio = load_model(model_id).media == "audio"
    for kind, a in audio_cases() if audio else image_cases():
        if audio:
            blob = api.compress_audio(audio_from_array(a, 8000), model=model_id, fallback=False)[0]
        else:
            blob = api.compress(a, model=model_id, fallback=False, **image_options(kind, model_id))
        stem = GOLDEN / f"{model_id}-v{container.read_header(blob) and blob[4]}-{kind}"
        if stem.with_suffix(".ardm").exists():
            print(f"{stem}.ardm exists: golden files are never rewritten")
            continue
        assert np.array_equal(api.decompress_array(blob), a)
        np.save(stem.with_suffix(".npy"), a)
        stem.with_suffix(".ardm").write_bytes(blob)
        print(f"wrote {stem}.ardm ({len(blob)} bytes)")


if __name__ == "__main__":
    main(sys.argv[1])
