"""benchmarks/portability.py on audio: clips compressed under one CPU setting decode to exactly the same
samples under another (slow -> default, two -> slow), and --sets audio without an audio model is refused
in one line."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ardmzip import audio

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "portability.py"


def _run(args: list[str], timeout: float, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **env})


def _small_clips(folder: Path) -> list[Path]:
    """Three short WAVs, one of each bit depth: 8-bit mono 8 kHz, 16-bit mono 16 kHz, 24-bit stereo 48 kHz."""
    rng = np.random.default_rng(4)
    t = np.arange(1500)
    tone = np.sin(2 * np.pi * t / 37)
    clips = {"u8.wav": ((60 * tone + rng.normal(0, 3, t.size)).astype(np.int8)[:, None], 8000),
             "s16.wav": ((8000 * tone + rng.normal(0, 40, t.size)).astype(np.int16)[:, None], 16000),
             "s24.wav": (np.stack([2e6 * tone, 1.5e6 * tone + rng.normal(0, 2e4, t.size)], 1)[:800].astype(np.int32),
                         48000)}
    paths = []
    for name, (samples, rate) in clips.items():
        paths.append(folder / name)
        paths[-1].write_bytes(audio.write_audio(audio.audio_from_array(samples, rate)))
    return paths


class TestAudioPortability:
    def test_refuses_sets_audio_without_an_audio_model(self, tmp_path):
        (tmp_path / "manifest.json").write_text(json.dumps({"models": {}, "defaults": {}}))
        proc = _run(["--sets", "audio"], timeout=60, ARDMZIP_MODELS=str(tmp_path))
        assert proc.returncode == 1
        assert "--sets audio: no default model for audio" in proc.stderr, proc.stderr[-2000:]

    def test_clips_round_trip_in_both_directions(self, tmp_path):
        from ardmzip.errors import ModelError
        from ardmzip.registry import default_model_id
        try:
            model = default_model_id("audio")
        except ModelError as e:
            pytest.skip(f"no audio model in this release (set ARDMZIP_MODELS to a folder with one): {e}")
        clips = _small_clips(tmp_path)
        out = tmp_path / "out"
        # PASSIVE: two OpenMP threads that spin-wait on a busy 2-core machine make the two-thread encode
        # ~50x slower (93 s instead of 2 s here); the waiting policy changes no result
        proc = _run(["--sets", "audio", "--audio-clips", *map(str, clips), "--out", str(out)], timeout=150,
                    OMP_WAIT_POLICY="PASSIVE")
        assert proc.returncode == 0, f"portability.py failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
        res = json.loads((out / "portability.json").read_text())
        runs = {f"{model}: slow -> default", f"{model}: two -> slow"}
        assert {s["run"] for s in res["summary"]} == runs
        for s in res["summary"]:
            assert s["dataset"] == "audio" and s["items"] == s["equal"] == len(clips), s
            assert 0 < s["bits_per_sample"] < 32, s
        assert len(res["rows"]) == 2 * len(clips)
        assert {r["depth"] for r in res["rows"]} == {8, 16, 24}
        for r in res["rows"]:
            assert r["equal"] is True and r["error"] is None and r["budget"] == 10, r
        md = (out / "portability.md").read_text()
        assert "no float audio model" in md and f"{model}: two -> slow | audio | 3 | 3/3" in md
