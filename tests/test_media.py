"""Tests of ardmzip.media: image files <-> planes + meta, exact round trips and clear refusals."""
from __future__ import annotations

import io
import json
import struct
import warnings
import zlib

import numpy as np
import PIL.Image
import pytest

from ardmzip import media
from ardmzip.errors import UnsupportedInputError
from ardmzip.media import Image, image_from_array, image_to_array, read_image, write_image

SIZES = [(1, 1), (1, 17), (7, 13)]  # (width, height)
FORMAT_MODES = [(fmt, mode) for fmt, modes in media._WRITES_MODES.items() for mode in sorted(modes)]


def pil_bytes(pil: PIL.Image.Image, fmt: str, **options) -> bytes:
    """`pil` encoded by Pillow as `fmt`."""
    buf = io.BytesIO()
    pil.save(buf, fmt, **options)
    return buf.getvalue()


def random_pil(mode: str, w: int, h: int, seed: int = 0) -> PIL.Image.Image:
    """A (w, h) Pillow image of `mode` with random pixels (and a random 6-colour palette for "P")."""
    rng = np.random.default_rng(seed)
    if mode == "1":
        grey = (rng.integers(0, 2, (h, w)) * 255).astype(np.uint8)
        return PIL.Image.frombytes("L", (w, h), grey.tobytes()).convert("1", dither=PIL.Image.Dither.NONE)
    if mode == "P":
        pil = PIL.Image.frombytes("P", (w, h), rng.integers(0, 6, (h, w), dtype=np.uint8).tobytes())
        pil.putpalette(rng.integers(0, 256, 18).tolist())
        return pil
    channels = len(mode)
    return PIL.Image.frombytes(mode, (w, h), rng.integers(0, 256, (h, w, channels), dtype=np.uint8).tobytes())


def png_bytes(w: int, h: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A minimal PNG written by hand (for what Pillow won't write: 16-bit RGB, huge headers)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", w, h, bit_depth, colour_type, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def rgb16_tiff_bytes(w: int, h: int) -> bytes:
    """A minimal uncompressed 16-bit-per-sample RGB TIFF written by hand (Pillow can't write one)."""
    pixels = bytes(6 * w * h)
    entries = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, 3, 8), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, 1, 14), (277, 3, 1, 3), (278, 3, 1, h), (279, 4, 1, len(pixels))]
    ifd_at = 14 + len(pixels)  # header (8) + BitsPerSample values (6) + pixels, then the IFD
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHII" if kind == 4 else "<HHIHH", tag, kind, count, value, *(() if kind == 4 else (0,)))
        for tag, kind, count, value in entries) + struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", ifd_at) + struct.pack("<3H", 16, 16, 16) + pixels + ifd


def assert_round_trip(img: Image) -> bytes:
    """write_image -> read_image gives back the same planes, mode, palette and transparency; returns the file"""
    data = write_image(img)
    back = read_image(data, "back")
    for key in ("mode", "width", "height", "palette", "palette_mode", "transparency"):
        assert back.meta.get(key) == img.meta.get(key), key
    assert len(back.planes) == len(img.planes)
    for a, b in zip(back.planes, img.planes):
        assert a.dtype == np.uint8 and a.shape == b.shape and np.array_equal(a, b)
    return data


def format_of(data: bytes) -> str:
    return PIL.Image.open(io.BytesIO(data)).format


class TestRoundTrip:
    @pytest.mark.parametrize("w,h", SIZES)
    @pytest.mark.parametrize("fmt,mode", FORMAT_MODES)
    def test_every_format_and_mode(self, fmt: str, mode: str, w: int, h: int) -> None:
        pil = random_pil(mode, w, h)
        img = read_image(pil_bytes(pil, fmt, **media._SAVE_OPTIONS[fmt]), "in")
        assert img.meta["mode"] == mode and img.meta["format"] == fmt
        assert (img.meta["width"], img.meta["height"]) == (w, h)
        data = assert_round_trip(img)
        assert format_of(data) == fmt  # written in its own format, no PNG fallback

    @pytest.mark.parametrize("mode", list(media.PLANE_LAYOUT))
    def test_plane_layout(self, mode: str) -> None:
        img = read_image(pil_bytes(random_pil(mode, 7, 13), "PNG"), "in")
        shapes = [(13, 7, 3) if kind == "rgb" else (13, 7) for kind in media.PLANE_LAYOUT[mode]]
        assert [p.shape for p in img.planes] == shapes
        assert all(p.dtype == np.uint8 for p in img.planes)

    def test_pixels_match_pillow(self) -> None:
        pil = random_pil("RGBA", 7, 13)
        img = read_image(pil_bytes(pil, "PNG"))
        assert np.array_equal(image_to_array(img), np.asarray(pil))

    def test_bilevel_is_grey_0_255(self) -> None:
        img = read_image(pil_bytes(random_pil("1", 7, 13), "PNG"))
        assert set(np.unique(img.planes[0])) <= {0, 255}

    def test_meta_survives_json(self) -> None:
        pil = random_pil("P", 7, 13)
        img = read_image(pil_bytes(pil, "PNG", transparency=bytes([0, 128, 255])))
        again = Image(img.planes, json.loads(json.dumps(img.meta)))
        assert_round_trip(again)


class TestPalette:
    def test_palette_and_indices_kept(self) -> None:
        pil = random_pil("P", 7, 13)
        img = read_image(pil_bytes(pil, "PNG"))
        assert img.meta["palette"] == pil.getpalette() and img.meta["palette_mode"] == "RGB"
        assert np.array_equal(img.planes[0], np.asarray(pil))
        back = PIL.Image.open(io.BytesIO(write_image(img)))
        assert back.mode == "P" and back.getpalette() == pil.getpalette()

    @pytest.mark.parametrize("fmt,transparency", [("PNG", 2), ("PNG", bytes([0, 128, 255])), ("GIF", 3)])
    def test_transparency_kept(self, fmt: str, transparency: int | bytes) -> None:
        img = read_image(pil_bytes(random_pil("P", 7, 13), fmt, transparency=transparency))
        expected = transparency if isinstance(transparency, int) else list(transparency)
        assert img.meta["transparency"] == expected
        assert format_of(assert_round_trip(img)) == fmt
        assert PIL.Image.open(io.BytesIO(write_image(img))).info["transparency"] == transparency

    @pytest.mark.parametrize("mode,transparency", [("L", 7), ("RGB", (1, 2, 3))])
    def test_colour_key_transparency_kept(self, mode: str, transparency: int | tuple) -> None:
        img = read_image(pil_bytes(random_pil(mode, 7, 13), "PNG", transparency=transparency))
        assert_round_trip(img)
        assert PIL.Image.open(io.BytesIO(write_image(img))).info["transparency"] == transparency

    def test_unholdable_meta_falls_back_to_png(self) -> None:
        # BMP has no transparency: the written BMP would lose it, so write_image writes PNG.
        img = read_image(pil_bytes(random_pil("P", 7, 13), "PNG", transparency=2))
        img.meta["format"] = "BMP"
        assert format_of(assert_round_trip(img)) == "PNG"


class TestWebP:
    def test_lossless_rgba_keeps_rgb_under_zero_alpha(self) -> None:
        pil = random_pil("RGBA", 7, 13)
        pixels = np.asarray(pil).copy()
        pixels[::2, :, 3] = 0
        pil = PIL.Image.frombytes("RGBA", (7, 13), pixels.tobytes())
        img = read_image(pil_bytes(pil, "WEBP", lossless=True, exact=True))
        assert img.meta["format"] == "WEBP" and np.array_equal(image_to_array(img), pixels)
        assert format_of(assert_round_trip(img)) == "WEBP"

    @pytest.mark.parametrize("mode", ["RGB", "RGBA"])
    def test_lossy_is_written_back_as_png(self, mode: str) -> None:
        data = pil_bytes(random_pil(mode, 7, 13), "WEBP", quality=50)
        img = read_image(data)
        assert img.meta["format"] == "PNG" and img.meta["source_format"] == "WEBP"
        assert np.array_equal(image_to_array(img), np.asarray(PIL.Image.open(io.BytesIO(data))))
        assert format_of(assert_round_trip(img)) == "PNG"


class TestJpeg:
    @pytest.mark.parametrize("mode", ["L", "RGB"])
    def test_written_back_as_png_with_same_pixels(self, mode: str) -> None:
        data = pil_bytes(random_pil(mode, 7, 13), "JPEG", quality=80)
        img = read_image(data, "photo.jpg")
        assert img.meta["format"] == "PNG" and img.meta["source_format"] == "JPEG"
        assert np.array_equal(image_to_array(img), np.asarray(PIL.Image.open(io.BytesIO(data))))
        assert format_of(assert_round_trip(img)) == "PNG"

    def test_exif_orientation_not_applied(self) -> None:
        exif = PIL.Image.Exif()
        exif[0x0112] = 6  # "rotate 90° to display"
        img = read_image(pil_bytes(random_pil("RGB", 7, 13), "JPEG", exif=exif))
        assert img.planes[0].shape == (13, 7, 3)


class TestRefusals:
    def refused(self, data: bytes, *phrases: str) -> None:
        with pytest.raises(UnsupportedInputError) as err:
            read_image(data, "photo.png")
        assert "photo.png" in str(err.value)
        for phrase in phrases:
            assert phrase in str(err.value)

    def test_empty(self) -> None:
        self.refused(b"", "empty")

    def test_text(self) -> None:
        self.refused(b"hello, world\n" * 10, "not an image Pillow can read")

    def test_truncated(self) -> None:
        self.refused(pil_bytes(random_pil("RGB", 64, 64), "PNG")[:200], "truncated")

    @pytest.mark.parametrize("fmt,mode", [("GIF", "P"), ("TIFF", "RGB"), ("WEBP", "RGBA"), ("BMP", "P")])
    def test_any_truncation_is_refused_cleanly(self, fmt: str, mode: str) -> None:
        data = pil_bytes(random_pil(mode, 31, 29), fmt, **media._SAVE_OPTIONS[fmt])
        for end in range(1, len(data), max(1, len(data) // 25)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Pillow warns about damaged TIFF tags
                try:
                    read_image(data[:end], "photo.png")
                except UnsupportedInputError as e:
                    assert "photo.png" in str(e)

    def test_16_bit_grey_png(self) -> None:
        self.refused(png_bytes(2, 1, 16, 0, b"\0" + bytes(4)), "16-bit images (mode I;16)", "convert to 8-bit")

    @pytest.mark.parametrize("colour_type,channels", [(2, 3), (6, 4), (4, 2)])
    def test_16_bit_colour_png_not_cut_to_8(self, colour_type: int, channels: int) -> None:
        self.refused(png_bytes(2, 1, 16, colour_type, b"\0" + bytes(4 * channels)), "16-bit", "convert to 8-bit")

    def test_16_bit_ppm(self) -> None:
        self.refused(b"P6 2 1 65535\n" + bytes(12), "16-bit")

    def test_16_bit_tiff(self) -> None:
        pil = PIL.Image.fromarray(np.arange(6, dtype=np.uint16).reshape(2, 3) * 1000)
        self.refused(pil_bytes(pil, "TIFF"), "16-bit images (mode I;16)")

    def test_16_bit_rgb_tiff_not_cut_to_8(self) -> None:
        self.refused(rgb16_tiff_bytes(3, 2), "16-bit images (mode RGB)")

    def test_float_tiff(self) -> None:
        self.refused(pil_bytes(PIL.Image.new("F", (3, 2)), "TIFF"), "mode F", "convert to 8-bit")

    def test_cmyk_tiff(self) -> None:
        self.refused(pil_bytes(PIL.Image.new("CMYK", (3, 2)), "TIFF"), "CMYK", "convert to RGB")

    def test_animated_gif(self) -> None:
        frames = [random_pil("P", 7, 13, seed) for seed in range(2)]
        data = pil_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])
        self.refused(data, "several frames (2")

    def test_too_large(self) -> None:
        self.refused(png_bytes(20_000, 10_001, 8, 0, b""), "too large", str(media.MAX_PIXELS))

    def test_large_but_allowed_opens_quietly(self) -> None:
        # 180 Mpx: above twice Pillow's default limit, under ours; only the header is read.
        data = png_bytes(15_000, 12_000, 8, 0, b"")
        saved = PIL.Image.MAX_IMAGE_PIXELS
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with media._pixel_limit():
                assert media._open(data, "big.png").size == (15_000, 12_000)
        assert PIL.Image.MAX_IMAGE_PIXELS == saved


class TestArrays:
    @pytest.mark.parametrize("shape,mode", [((13, 7), "L"), ((13, 7, 3), "RGB"), ((13, 7, 4), "RGBA"),
                                            ((1, 1), "L"), ((17, 1, 3), "RGB")])
    def test_round_trip(self, shape: tuple[int, ...], mode: str) -> None:
        a = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
        img = image_from_array(a)
        assert img.meta["mode"] == mode and img.meta["format"] == "PNG"
        assert np.array_equal(image_to_array(img), a)
        data = assert_round_trip(img)
        assert np.array_equal(image_to_array(read_image(data)), a)

    def test_non_contiguous_input(self) -> None:
        a = np.random.default_rng(2).integers(0, 256, (13, 14, 3), dtype=np.uint8)[:, ::2]
        assert np.array_equal(image_to_array(image_from_array(a)), a)

    def test_palette_gives_indices(self) -> None:
        pil = random_pil("P", 7, 13)
        assert np.array_equal(image_to_array(read_image(pil_bytes(pil, "PNG"))), np.asarray(pil))

    @pytest.mark.parametrize("a", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 2), np.uint8),
                                   np.zeros((4, 4), np.int16), np.zeros((0, 4), np.uint8),
                                   np.zeros((2, 4, 4, 3), np.uint8), [[0, 1], [2, 3]]],
                             ids=["float", "two-channel", "int16", "empty", "4-d", "list"])
    def test_refusals(self, a: np.ndarray) -> None:
        with pytest.raises(UnsupportedInputError, match="uint8|shape"):
            image_from_array(a)

    def test_wrong_planes_for_mode(self) -> None:
        img = image_from_array(np.zeros((13, 7, 4), np.uint8))
        img.planes = img.planes[:1]
        with pytest.raises(ValueError, match="RGBA"):
            write_image(img)
