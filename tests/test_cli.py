"""The command line through files and through pipes, as a user would drive it."""
import dataclasses
import io
import os
import resource
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import png_bytes

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "ardmzip.cli"]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
MEMORY_LIMIT = 3 << 30  # bytes of address space for runs given crafted files: an allocation bug fails fast


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run(*args, stdin: bytes | None = None, cwd=None, limit_memory: bool = False, **kw) -> subprocess.CompletedProcess:
    """The CLI as a user runs it; stdout and stderr captured unless kw says where they go."""
    if "stdout" not in kw:
        kw["capture_output"] = True
    return subprocess.run([*CLI, *map(str, args)], input=stdin, cwd=cwd, env=ENV, timeout=300,
                          preexec_fn=_limit_memory if limit_memory else None, **kw)


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under folder -> its bytes (None for a folder): what a failed run must leave as it was."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def error_lines(r: subprocess.CompletedProcess) -> list[str]:
    return r.stderr.decode().splitlines()


def assert_one_line_each(r: subprocess.CompletedProcess, names: list[str]) -> None:
    """stderr holds exactly one `ardmzip: NAME: ...` line per failed file, and nothing else."""
    lines = error_lines(r)
    for name in names:
        mine = [line for line in lines if line.startswith(f"ardmzip: {name}: ")]
        assert len(mine) == 1, (name, lines)
    assert len(lines) == len(names), lines
    assert not [line for line in lines if "internal error" in line], lines


def assert_no_temp_files(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


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
        assert np.array_equal(np.asarray(Image.open(photo)), np.asarray(Image.open(io.BytesIO(original))))

    def test_refuses_to_overwrite_without_force(self, photo, tmp_path):
        out = tmp_path / "photo.png.ardm"
        out.write_bytes(b"precious")
        r = run("compress", "-b", "3", photo)
        assert r.returncode == 1 and b"already exists" in r.stderr and b"-f" in r.stderr
        assert out.read_bytes() == b"precious"
        assert run("compress", "-b", "3", "-f", photo).returncode == 0
        assert out.read_bytes().startswith(b"\x89ARD")

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
        assert "arithmetic int-exact, scale offsets" in line   # the default model codes with them
        back = tmp_path / "back.png"
        assert run("decompress", "-o", back, out).returncode == 0
        assert np.array_equal(np.asarray(Image.open(back)), np.asarray(Image.open(photo)))

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
        assert r.returncode == 0 and r.stdout.startswith(b"\x89ARD")
        r2 = run("decompress", "-c", "-", stdin=r.stdout)
        assert r2.returncode == 0
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(r2.stdout))),
                              np.asarray(Image.open(photo)))

    def test_dash_without_c_writes_stdout(self, photo):
        r = run("compress", "-b", "2", "-", stdin=photo.read_bytes())
        assert r.returncode == 0 and r.stdout.startswith(b"\x89ARD")


def _bad_images(folder: Path) -> dict[str, tuple[str, str]]:
    """Inputs compress must refuse, one of each kind: argument -> (the file its message names, what the
    message must say)."""
    rng = np.random.default_rng(3)
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image\n")
    (folder / "folder.png").mkdir()
    Image.fromarray(rng.integers(0, 65536, (8, 8)).astype(np.uint16)).save(folder / "deep16.png")
    Image.new("CMYK", (8, 8), (10, 20, 30, 40)).save(folder / "cmyk.jpg")
    Image.new("CMYK", (8, 8), (10, 20, 30, 40)).save(folder / "cmyk.tif")
    frames = [Image.fromarray(np.full((8, 8), v, np.uint8)).convert("P") for v in (0, 200)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    (folder / "taken.png").write_bytes(png_bytes(np.zeros((4, 4), np.uint8)))
    (folder / "taken.png.ardm").mkdir()  # the output name is taken by a folder
    expect = {"empty.png": "empty", "notes.txt": "not an image", "folder.png": "is a directory",
              "deep16.png": "16-bit", "cmyk.jpg": "CMYK", "cmyk.tif": "CMYK", "anim.gif": "several frames",
              "missing.png": "No such file"}
    return {**{name: (name, text) for name, text in expect.items()},
            "taken.png": ("taken.png.ardm", "is a directory")}


def _bad_ardm_files(folder: Path, good: bytes) -> dict[str, str]:
    """.ardm files decompress must refuse, made from a good one: file name -> what its message says."""
    from ardmzip import container
    header, words = container.unpack(good)
    crafted = {  # valid CRC-32, meaning refused
        "model.png.ardm": dataclasses.replace(header, model_id="nope"),
        "weights.png.ardm": dataclasses.replace(header, model_hash=b"\0\1\2\3"),
        "huge.png.ardm": dataclasses.replace(header, shape=(46340, 46340)),  # 2^31 pixels: refuse, not allocate
    }
    files = {name: container.pack(h, words) for name, h in crafted.items()}
    expect = {"model.png.ardm": "unknown model 'nope'", "weights.png.ardm": "weights",
              "huge.png.ardm": ""}  # any one line (for now "out of memory", under run's memory limit)
    for k in (0, 3, 5, 12, len(good) // 2, len(good) - 1):
        files[f"cut{k}.png.ardm"] = good[:k]
        expect[f"cut{k}.png.ardm"] = "not an .ardm file" if k < 4 else "truncated"
    for i in (0, 5 * 8, 6 * 8 + 7, 17 * 8, 4 * len(good), 8 * len(good) - 1):
        damaged = bytearray(good)
        damaged[i // 8] ^= 1 << (i % 8)
        files[f"flip{i}.png.ardm"] = bytes(damaged)
        expect[f"flip{i}.png.ardm"] = "not an .ardm file" if i < 32 else "corrupt"
    files["v9.png.ardm"] = good[:4] + b"\x09" + good[5:]
    expect["v9.png.ardm"] = "unsupported format version 9"
    files["gif.png.ardm"] = b"GIF89a...."
    expect["gif.png.ardm"] = "not an .ardm file"
    files["photo.bin"] = good
    expect["photo.bin"] = "unknown suffix"
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "folder.png.ardm").mkdir()
    expect["folder.png.ardm"] = "is a directory"
    expect["missing.png.ardm"] = "No such file"
    return expect


class TestBadInput:
    """Each misuse: one line on stderr naming the file, exit status 1, the other files still done,
    no output or temporary file left, the inputs as they were (--rm included)."""

    def test_compress_refuses_what_is_not_a_supported_image(self, tmp_path, photo):
        bad = _bad_images(tmp_path)
        expect = dict(bad.values())
        before = snapshot(tmp_path)
        r = run("compress", "--rm", "-f", "-q", "-b", "2", *bad, photo.name, cwd=tmp_path)
        assert r.returncode == 1
        assert_one_line_each(r, list(expect))
        for line in error_lines(r):
            name = line.split(": ")[1]
            assert expect[name] in line, line
        assert (tmp_path / "photo.png.ardm").exists() and not photo.exists(), "the good file is still done"
        after = snapshot(tmp_path)
        assert {k: v for k, v in after.items() if k != "photo.png.ardm"} == {
            k: v for k, v in before.items() if k != "photo.png"}, "bad inputs untouched, nothing else written"
        assert_no_temp_files(tmp_path)

    def test_decompress_refuses_damaged_and_crafted_files(self, tmp_path, photo):
        from ardmzip import api
        good = api.compress(photo.read_bytes(), budget=3)
        expect = _bad_ardm_files(tmp_path, good)
        (tmp_path / "good.png.ardm").write_bytes(good)
        photo.unlink()
        before = snapshot(tmp_path)
        r = run("decompress", "--rm", "-q", *expect, "good.png.ardm", cwd=tmp_path, limit_memory=True)
        assert r.returncode == 1
        assert_one_line_each(r, list(expect))
        for line in error_lines(r):
            name = line.split(": ")[1]
            assert expect[name] in line, line
        assert (tmp_path / "good.png").exists() and not (tmp_path / "good.png.ardm").exists()
        after = snapshot(tmp_path)
        assert {k: v for k, v in after.items() if k != "good.png"} == {
            k: v for k, v in before.items() if k != "good.png.ardm"}
        assert_no_temp_files(tmp_path)

    def test_test_command_refuses_the_same(self, tmp_path, photo):
        from ardmzip import api
        expect = _bad_ardm_files(tmp_path, api.compress(photo.read_bytes(), budget=3))
        expect.pop("photo.bin")  # test reads any name
        before = snapshot(tmp_path)
        r = run("decompress", "-t", *expect, cwd=tmp_path, limit_memory=True)
        assert r.returncode == 1 and r.stdout == b""
        assert_one_line_each(r, list(expect))
        assert snapshot(tmp_path) == before

    def test_output_folder_that_cannot_be_written(self, tmp_path, photo):
        (tmp_path / "file.txt").write_text("a file, not a folder")
        before = snapshot(tmp_path)
        r = run("compress", "--rm", "-b", "2", "-o", "file.txt/out.ardm", photo.name, cwd=tmp_path)
        assert r.returncode == 1
        assert_one_line_each(r, ["file.txt/out.ardm"])
        assert "not a folder" in r.stderr.decode()
        assert snapshot(tmp_path) == before, "input kept (--rm), nothing written"

    def test_no_compressed_data_to_a_terminal(self, photo):
        import pty
        leader, follower = pty.openpty()
        try:
            r = run("compress", "-b", "2", "-c", photo, stdout=follower, stderr=subprocess.PIPE)
        finally:
            os.close(follower)
            os.close(leader)
        assert r.returncode == 1 and b"terminal" in r.stderr
        assert_one_line_each(r, [str(photo)])


class TestRemoveAndVerbose:
    def test_rm_verbose_and_t(self, tmp_path, photo, photo64):
        Image.fromarray(photo64[:16, :16]).save(tmp_path / "shot.jpg", quality=90)
        original = np.asarray(Image.open(photo))
        photo.chmod(0o640)
        os.utime(photo, (1_600_000_000, 1_600_000_000))
        r = run("compress", "--rm", "-v", "-b", "3", photo.name, "shot.jpg", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert not photo.exists() and (tmp_path / "photo.png.ardm").exists()
        st = (tmp_path / "photo.png.ardm").stat()
        assert (st.st_mode & 0o777, st.st_mtime) == (0o640, 1_600_000_000), "mode and time kept, as gzip"
        lines = error_lines(r)
        line = next(x for x in lines if x.startswith("photo.png -> photo.png.ardm: "))
        for part in ("bytes (", "%)", "bits/dim", "network calls", " s, verified, input removed"):
            assert part in line, line
        assert (tmp_path / "shot.jpg").exists(), "decompressing gives a PNG: the JPEG is kept"
        assert any(x.startswith("ardmzip: shot.jpg: kept (--rm)") and "JPEG" in x for x in lines), lines

        before = snapshot(tmp_path)
        r = run("decompress", "-t", "-v", "photo.png.ardm", cwd=tmp_path)
        assert r.returncode == 0 and r.stderr.decode().startswith("photo.png.ardm: OK, ")
        assert snapshot(tmp_path) == before, "-t writes nothing"

        r = run("decompress", "--rm", "-v", "photo.png.ardm", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "photo.png.ardm -> photo.png: " in r.stderr.decode() and "input removed" in r.stderr.decode()
        assert not (tmp_path / "photo.png.ardm").exists()
        assert np.array_equal(np.asarray(Image.open(photo)), original)
        assert (photo.stat().st_mode & 0o777, photo.stat().st_mtime) == (0o640, 1_600_000_000)

    def test_rm_never_removes_stdin_or_the_output(self, tmp_path, photo):
        r = run("compress", "--rm", "-b", "2", "-o", "in.ardm", "-", stdin=photo.read_bytes(), cwd=tmp_path)
        assert r.returncode == 0 and (tmp_path / "in.ardm").exists() and photo.exists()
        r = run("decompress", "--rm", "-f", "-o", "in.ardm", "in.ardm", cwd=tmp_path)
        assert r.returncode == 1 and b"is the input file itself" in r.stderr
        assert (tmp_path / "in.ardm").read_bytes().startswith(b"\x89ARD")


class TestUsage:
    """Usage errors: exit status 2, one line naming the command and its --help, nothing written."""

    @pytest.mark.parametrize("args", [
        ["compress", "-o", "x.ardm", "a.png", "b.png"],
        ["compress", "--bogus", "a.png"],
        ["compress"],
        ["decompress"],
        ["frobnicate", "a.png"],
        ["compress", "-b", "0", "a.png"],
        ["compress", "-b", "many", "a.png"],
        ["compress", "-c", "--rm", "a.png"],
        ["compress", "-c", "-o", "x.ardm", "a.png"],
        ["compress", "-q", "-v", "a.png"],
        ["decompress", "-t", "-o", "x.png", "a.png.ardm"],
        ["test", "-q", "-v", "a.png.ardm"],
    ], ids=" ".join)
    def test_usage_error(self, tmp_path, args):
        (tmp_path / "a.png").write_bytes(png_bytes(np.zeros((4, 4), np.uint8)))
        (tmp_path / "b.png").write_bytes(png_bytes(np.ones((4, 4), np.uint8)))
        before = snapshot(tmp_path)
        r = run(*args, cwd=tmp_path)
        assert r.returncode == 2 and r.stdout == b""
        lines = error_lines(r)
        assert len(lines) == 1 and lines[0].startswith("ardmzip") and "--help" in lines[0], lines
        assert snapshot(tmp_path) == before

    def test_every_option_of_every_command_is_explained(self):
        from ardmzip.cli import main
        runner = CliRunner()
        for name, command in {"": main, **main.commands}.items():
            assert command.help, name
            r = runner.invoke(main, [name, "--help"] if name else ["--help"])
            assert r.exit_code == 0, r.output
            for param in command.params:
                if isinstance(param, click.Option):
                    assert param.help, (name, param.name)
                    assert all(opt in r.output for opt in param.opts), (name, param.opts)


def test_levels_map_to_budgets(tmp_path, photo64):
    """-1 … -9 choose budgets from the model's default (level 6 = default); -b with a level is a usage error."""
    from ardmzip import api
    from ardmzip.registry import default_model_id, load_model
    budgets = [api.level_budget(level) for level in range(1, 10)]
    assert budgets == sorted(budgets) and budgets[5] == load_model(default_model_id("image")).default_budget
    src = tmp_path / "a.png"
    src.write_bytes(png_bytes(photo64[:16, :16]))
    r = run("compress", "-1", "-q", str(src))
    assert r.returncode == 0, r.stderr
    assert api.read_info((tmp_path / "a.png.ardm").read_bytes()).budget in (budgets[0], 0)  # 0: stored fallback
    r = run("compress", "-9", "-b", "3", "-o", str(tmp_path / "b.ardm"), str(src))
    assert r.returncode == 2 and b"level" in r.stderr and not (tmp_path / "b.ardm").exists()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_interrupted_run_leaves_nothing(tmp_path, photo64, sig):
    """Ctrl-C or SIGTERM while compressing: exit 130, no output, no temporary file, input kept."""
    import signal
    import time
    src = tmp_path / "big.png"
    src.write_bytes(png_bytes(np.tile(photo64, (8, 8, 1))))      # 512×512: many seconds of work
    before = snapshot(tmp_path)
    # a child of a background job inherits SIGINT ignored (POSIX), and Python then never raises
    # KeyboardInterrupt: give the child the default disposition, as an interactive shell would
    p = subprocess.Popen([*CLI, "compress", "-q", str(src)], env=ENV, stderr=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(8.0)        # past start-up (imports: 2-4 s, more on a busy machine), well inside the coding
    p.send_signal(getattr(signal, sig))
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert b"interrupted" in err
    assert snapshot(tmp_path) == before
    assert_no_temp_files(tmp_path)
