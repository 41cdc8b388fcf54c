import io
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

DATA = Path(__file__).parent / "data"


def png_bytes(a: np.ndarray, mode: str | None = None, **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a, mode).save(buf, "PNG", **save)
    return buf.getvalue()


@pytest.fixture(scope="session")
def photo64() -> np.ndarray:
    """A 64×64 crop of a validation photo (not in the evaluation set): (64, 64, 3) uint8."""
    return np.asarray(Image.open(DATA / "crop64.png").convert("RGB"))


@pytest.fixture(scope="session")
def speech8k() -> np.ndarray:
    """1.2 s of studio speech from the validation split (asterisk prompt "extension", 8 kHz, CC BY-SA 3.0):
    (9526, 1) int16."""
    return soundfile.read(DATA / "speech8k.wav", dtype="int16", always_2d=True)[0]
