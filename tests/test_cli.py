"""The command line through files and through pipes, as a user would drive it."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import png_bytes

CLI = [sys.executable, "-m", "ardmzip.cli"]


def run(*args, stdin: bytes | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], input=stdin, capture_output=True, cwd=cwd, timeout=300)


@pytest.fixture
def photo(tmp_path, photo64) -> Path:
    p = tmp_path / "photo.png"
    p.write_bytes(png_bytes(photo64[:24, :20]))
    return p


class TestFiles:
    def test_compress_then_decompress(self, photo, tmp_path):
        original = photo.read_bytes()
        r = run("compress", "-b", "5", photo)
        assert r.returncode == 0, r.stderr
        packed = tmp_path / "photo.png.ardm"
        assert packed.exists() and photo.exists(), "the input is kept"
        assert b"bits/dim" in r.stderr and r.stdout == b""
        photo.unlink()
        r = run("decompress", packed)
        assert r.returncode == 0, r.stderr
        assert np.array_equal(np.asarray(Image.open(photo)), np.asarray(Image.open(__import__("io").BytesIO(original))))

    def test_refuses_to_overwrite_without_force(self, photo, tmp_path):
        out = tmp_path / "photo.png.ardm"
        out.write_bytes(b"precious")
        r = run("compress", "-b", "3", photo)
        assert r.returncode == 1 and b"already exists" in r.stderr and b"-f" in r.stderr
        assert out.read_bytes() == b"precious"
        assert run("compress", "-b", "3", "-f", photo).returncode == 0
        assert out.read_bytes().startswith(b"\x89ARD\x01")

    def test_jpeg_comes_back_as_png_with_the_same_pixels(self, tmp_path, photo64):
        src = tmp_path / "shot.jpg"
        Image.fromarray(photo64[:16, :16]).save(src, quality=90)
        assert run("compress", "-b", "3", src).returncode == 0
        r = run("decompress", tmp_path / "shot.jpg.ardm")
        assert r.returncode == 0 and b"shot.png" in r.stderr
        assert np.array_equal(np.asarray(Image.open(tmp_path / "shot.png")), np.asarray(Image.open(src)))

    def test_output_option_and_info(self, photo, tmp_path):
        out = tmp_path / "x.ardm"
        assert run("compress", "-b", "4", "-o", out, photo).returncode == 0
        r = run("info", out)
        assert r.returncode == 0
        line = r.stdout.decode()
        assert "image RGB 24x20x3" in line and "budget 4" in line and "bits/dim" in line
        back = tmp_path / "back.png"
        assert run("decompress", "-o", back, out).returncode == 0
        assert np.array_equal(np.asarray(Image.open(back)), np.asarray(Image.open(photo)))

    def test_many_files_one_bad(self, photo, tmp_path):
        bad = tmp_path / "notes.txt"
        bad.write_text("not an image")
        r = run("compress", "-b", "3", bad, photo)
        assert r.returncode == 1
        assert (tmp_path / "photo.png.ardm").exists(), "the other files are still processed"
        assert not (tmp_path / "notes.txt.ardm").exists()
        err = r.stderr.decode().strip().splitlines()
        assert any(line.startswith("ardmzip: ") and "notes.txt" in line for line in err)

    @pytest.mark.parametrize("content, message", [
        (b"", "not an .ardm file"), (b"\x89ARD\x01", "truncated"), (b"GIF89a....", "not an .ardm file")])
    def test_bad_ardm_files(self, tmp_path, content, message):
        p = tmp_path / "bad.png.ardm"
        p.write_bytes(content)
        r = run("decompress", p)
        assert r.returncode == 1 and message in r.stderr.decode()
        assert len(r.stderr.decode().strip().splitlines()) == 1
        assert not (tmp_path / "bad.png").exists()

    def test_missing_file_and_directory(self, tmp_path):
        assert run("compress", tmp_path / "nope.png").returncode == 1
        r = run("compress", tmp_path)
        assert r.returncode == 1 and b"is a directory" in r.stderr

    def test_test_command_verifies_without_writing(self, photo, tmp_path):
        assert run("compress", "-b", "3", "-o", tmp_path / "p.ardm", photo).returncode == 0
        before = sorted(tmp_path.iterdir())
        r = run("test", tmp_path / "p.ardm")
        assert r.returncode == 0 and b"OK" in r.stderr
        assert sorted(tmp_path.iterdir()) == before
        damaged = bytearray((tmp_path / "p.ardm").read_bytes())
        damaged[len(damaged) // 2] ^= 4
        (tmp_path / "bad.ardm").write_bytes(bytes(damaged))
        r = run("test", tmp_path / "bad.ardm")
        assert r.returncode == 1 and b"corrupt" in r.stderr

    def test_models_and_help(self):
        r = run("models")
        assert r.returncode == 0 and b"(default)" in r.stdout
        r = run("compress", "--help")
        assert r.returncode == 0 and b"--budget" in r.stdout and b"--model" in r.stdout

    def test_unknown_model_is_a_one_line_error(self, photo):
        r = run("compress", "-m", "nope", photo)
        assert r.returncode == 1 and b"unknown model 'nope'" in r.stderr


class TestPipes:
    def test_stdin_to_stdout_and_back(self, photo):
        r = run("compress", "-b", "4", "-c", "-", stdin=photo.read_bytes())
        assert r.returncode == 0 and r.stdout.startswith(b"\x89ARD\x01")
        r2 = run("decompress", "-c", "-", stdin=r.stdout)
        assert r2.returncode == 0
        assert np.array_equal(np.asarray(Image.open(__import__("io").BytesIO(r2.stdout))),
                              np.asarray(Image.open(photo)))

    def test_dash_without_c_writes_stdout(self, photo):
        r = run("compress", "-b", "2", "-", stdin=photo.read_bytes())
        assert r.returncode == 0 and r.stdout.startswith(b"\x89ARD\x01")
