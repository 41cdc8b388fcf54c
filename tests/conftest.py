import io
from pathlib import Path

import numpy as np
import pytest
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
