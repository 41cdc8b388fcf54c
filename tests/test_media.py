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
from PIL import TiffImagePlugin
from PIL.PngImagePlugin import PngInfo

from ardmzip import media
from ardmzip.errors import CorruptError, UnsupportedInputError
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
        with pytest.raises(CorruptError, match="RGBA"):
            write_image(img)


# ---------------------------------------------------------------------------------------------- metadata

def icc_profile() -> bytes:
    """A real sRGB profile where Pillow has littlecms, else bytes Pillow stores all the same."""
    from PIL import features
    if features.check("littlecms2"):
        from PIL import ImageCms
        return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return bytes(range(256)) * 3


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def with_chunks(png: bytes, *chunks: bytes) -> bytes:
    """`png` with `chunks` spliced in right after IHDR (what Pillow won't write: pHYs without unit...)."""
    return png[:33] + b"".join(chunks) + png[33:]


def chunk_types(png: bytes) -> list[bytes]:
    kinds, pos = [], 8
    while pos < len(png):
        length = int.from_bytes(png[pos:pos + 4], "big")
        kinds.append(png[pos + 4:pos + 8])
        pos += 12 + length
    return kinds


def reopen(data: bytes) -> PIL.Image.Image:
    pil = PIL.Image.open(io.BytesIO(data))
    pil.load()
    return pil


def exif_bytes() -> bytes:
    exif = PIL.Image.Exif()
    exif[0x010F] = "camera"  # Make
    exif[0x0112] = 6  # Orientation
    return exif.tobytes()


PIXEL_KEYS = {"mode", "format", "width", "height", "palette", "palette_mode", "transparency", "source_format"}


def rich_png() -> bytes:
    """An RGB PNG with an ICC profile, gamma, dpi, EXIF, text of every kind and chunks kept as they are."""
    info = PngInfo()
    info.add_text("Title", "a title")
    info.add_text("Description", "long " * 40, zip=True)
    info.add_itxt("Author", "Zoë € 作者", "fr", "Auteur")
    info.add_itxt("Comment", "compressed iTXt", zip=True)
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    info.add(b"gAMA", struct.pack(">I", 45455))
    info.add(b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000))
    info.add(b"tIME", struct.pack(">HBBBBB", 2024, 5, 17, 12, 30, 0))
    info.add(b"prVt", b"private, safe to copy")
    return pil_bytes(random_pil("RGB", 7, 13), "PNG", pnginfo=info, icc_profile=icc_profile(), dpi=(72, 300),
                     exif=exif_bytes())


class TestMetadata:
    def test_plain_png_has_only_shape_keys(self) -> None:
        for mode in ("L", "RGB", "RGBA", "LA", "1"):
            meta = read_image(pil_bytes(random_pil(mode, 7, 13), "PNG")).meta
            assert set(meta) == {"mode", "format", "width", "height"}, mode

    @pytest.mark.parametrize("fmt,mode", FORMAT_MODES)
    def test_inputs_without_metadata_add_no_keys(self, fmt: str, mode: str) -> None:
        options = {**media._SAVE_OPTIONS[fmt], **({"dpi": (0, 0)} if fmt == "BMP" else {})}  # else 96 dpi
        img = read_image(pil_bytes(random_pil(mode, 7, 13), fmt, **options))
        assert set(img.meta) <= PIXEL_KEYS and media.preserved_note(img.meta) == ""
        assert set(read_image(write_image(img)).meta) <= PIXEL_KEYS  # and none appear on writing

    def test_png_round_trip(self) -> None:
        data = rich_png()
        img = read_image(data)
        assert "dropped" not in img.meta and media.preserved_note(img.meta) == ""
        back_data = write_image(Image(img.planes, json.loads(json.dumps(img.meta))))
        before, after = reopen(data), reopen(back_data)
        assert after.info["icc_profile"] == before.info["icc_profile"] == icc_profile()
        assert after.text == before.text and len(after.text) == 5
        assert [(t.lang, t.tkey) for t in (after.text["Author"], after.text["Comment"])] == [("fr", "Auteur"), ("", "")]
        assert after.info["gamma"] == pytest.approx(before.info["gamma"], abs=1e-5)
        assert after.info["gamma"] == pytest.approx(0.45455, abs=1e-5)
        assert after.info["dpi"] == before.info["dpi"]
        assert after.info["exif"] == before.info["exif"]
        assert after.info["chromaticity"] == before.info["chromaticity"]
        assert after.info["xmp"] == before.info["xmp"]
        assert read_image(back_data).meta == img.meta  # so the file can go round again, unchanged

    def test_png_chunk_kinds_kept(self) -> None:
        img = read_image(rich_png())
        assert img.meta["gamma"] == 0.45455 and img.meta["dpi"] == [72, 300]
        assert [entry[2:3] for entry in img.meta["text"]] == [[], ["z"], ["i"], ["iz"], ["i"]]
        assert [c[0] for c in img.meta["chunks"]] == ["cHRM", "tIME", "prVt"]
        kinds = chunk_types(write_image(img))
        for kind in (b"iCCP", b"gAMA", b"cHRM", b"tIME", b"prVt", b"pHYs", b"eXIf", b"tEXt", b"zTXt", b"iTXt"):
            assert kind in kinds, kind
        assert kinds.count(b"iTXt") == 3 and kinds.count(b"zTXt") == 1

    def test_png_srgb_intent(self) -> None:
        data = pil_bytes(random_pil("RGB", 7, 13), "PNG", pnginfo=_png_info(b"sRGB", bytes([2])))
        img = read_image(data)
        assert img.meta["srgb"] == 2
        assert reopen(write_image(img)).info["srgb"] == 2

    def test_png_private_chunk_after_idat(self) -> None:
        info = PngInfo()
        info.add(b"laTe", b"after the pixels", after_idat=True)
        img = read_image(pil_bytes(random_pil("L", 7, 13), "PNG", pnginfo=info))
        assert img.meta["chunks"] == [["laTe", "YWZ0ZXIgdGhlIHBpeGVscw==", 1]]
        kinds = chunk_types(write_image(img))
        assert kinds.index(b"laTe") > kinds.index(b"IDAT")

    def test_png_dropped(self) -> None:
        png = pil_bytes(random_pil("RGB", 7, 13), "PNG", icc_profile=icc_profile())
        data = with_chunks(png, png_chunk(b"pHYs", struct.pack(">IIB", 2, 3, 0)),  # aspect ratio only
                           png_chunk(b"sTER", b"\0"),  # public, Pillow can't write it
                           png_chunk(b"prVT", b"unsafe to copy"),  # private, tied to the pixel data
                           png_chunk(b"sRGB", b"\0"))  # beside iCCP: not allowed, Pillow writes iCCP
        img = read_image(data)
        assert img.meta["dropped"] == ["pHYs", "prVT", "sRGB", "sTER"]
        assert media.preserved_note(img.meta) == "not preserved: pHYs, prVT, sRGB, sTER"
        assert "dpi" not in img.meta and "chunks" not in img.meta
        back = reopen(write_image(img))
        assert back.info["icc_profile"] == icc_profile() and "srgb" not in back.info

    def test_png_duplicate_text_keys(self) -> None:
        info = PngInfo()
        info.add_text("Note", "first")
        info.add_text("Note", "second")
        img = read_image(pil_bytes(random_pil("L", 7, 13), "PNG", pnginfo=info))
        assert img.meta["text"] == [["Note", "second"]] and img.meta["dropped"] == ["duplicate text keys"]

    def test_jpeg_metadata_into_png(self) -> None:
        photoshop = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x00"
        app13 = b"\xff\xed" + struct.pack(">H", len(photoshop) + 2) + photoshop
        data = pil_bytes(random_pil("RGB", 7, 13), "JPEG", icc_profile=icc_profile(), dpi=(300, 300),
                         exif=exif_bytes(), xmp=b"<x:xmpmeta/>", comment=b"a comment", extra=app13)
        img = read_image(data, "photo.jpg")
        assert img.meta["format"] == "PNG" and img.meta["dpi"] == [300, 300]
        assert img.meta["dropped"] == ["Photoshop"]
        assert media.preserved_note(img.meta) == "not preserved: Photoshop"
        before, after = reopen(data), reopen(write_image(img))
        assert after.format == "PNG"
        assert after.info["icc_profile"] == before.info["icc_profile"] == icc_profile()
        assert after.info["dpi"] == pytest.approx((300, 300), abs=0.01)  # PNG stores whole pixels per metre
        assert after.info["exif"] == before.info["exif"]  # eXIf chunk
        assert after.getexif()[0x0112] == 6
        assert after.info["xmp"] == before.info["xmp"] == b"<x:xmpmeta/>"
        assert after.text["Comment"] == "a comment"

    def test_plain_jpeg_adds_no_keys(self) -> None:
        img = read_image(pil_bytes(random_pil("L", 7, 13), "JPEG"))
        assert set(img.meta) == {"mode", "format", "width", "height", "source_format"}

    def test_lossless_webp(self) -> None:
        data = pil_bytes(random_pil("RGBA", 7, 13), "WEBP", lossless=True, exact=True, icc_profile=icc_profile(),
                         exif=exif_bytes(), xmp=b"<x:xmpmeta/>")
        img = read_image(data)
        assert img.meta["format"] == "WEBP" and "dropped" not in img.meta
        before, after = reopen(data), reopen(write_image(img))
        assert after.format == "WEBP"
        for key in ("icc_profile", "exif", "xmp"):
            assert after.info[key] == before.info[key], key

    def test_lossy_webp_into_png(self) -> None:
        data = pil_bytes(random_pil("RGB", 7, 13), "WEBP", quality=50, icc_profile=icc_profile(),
                         exif=exif_bytes(), xmp=b"<x:xmpmeta/>")
        after = reopen(write_image(read_image(data)))
        assert after.format == "PNG" and after.info["icc_profile"] == icc_profile()
        assert after.info["exif"] == b"Exif\0\0" + reopen(data).info["exif"] and after.info["xmp"] == b"<x:xmpmeta/>"

    @pytest.mark.parametrize("compression", [None, "tiff_lzw"])
    def test_tiff(self, compression: str | None) -> None:
        tags = TiffImagePlugin.ImageFileDirectory_v2()
        tags[315] = "An Artist"
        tags[270] = "café".encode("latin-1")  # Pillow writes str tags as ASCII: bytes keep the é
        tags[700] = b"<x:xmpmeta/>"
        options = {"compression": compression} if compression else {}
        data = pil_bytes(random_pil("RGB", 7, 13), "TIFF", tiffinfo=tags, icc_profile=icc_profile(),
                         dpi=(72, 150), software="a program", **options)
        img = read_image(data)
        assert img.meta["tiff"] == {"270": "café", "282": [72, 1], "283": [150, 1], "296": 2, "305": "a program",
                                    "315": "An Artist", "700": "PHg6eG1wbWV0YS8+"}
        assert "dropped" not in img.meta
        before, after = reopen(data), reopen(write_image(img))
        assert after.format == "TIFF" and after.info["icc_profile"] == icc_profile()
        assert after.info["dpi"] == before.info["dpi"] == (72, 150)
        for tag in (270, 305, 315, 700):
            assert after.tag_v2[tag] == before.tag_v2[tag], tag

    def test_tiff_exif_dropped(self) -> None:
        tags = TiffImagePlugin.ImageFileDirectory_v2()
        tags[34665] = {0x829A: 0.5}  # an EXIF IFD with an exposure time
        tags[33434] = 0.25  # an EXIF tag in the main IFD
        img = read_image(pil_bytes(random_pil("L", 7, 13), "TIFF", tiffinfo=tags))
        assert img.meta["dropped"] == ["EXIF", "ExposureTime"]

    def test_bmp_dpi(self) -> None:
        img = read_image(pil_bytes(random_pil("RGB", 7, 13), "BMP", dpi=(72, 150)))
        assert img.meta["dpi"] == [72, 150]
        data = write_image(img)
        assert format_of(data) == "BMP" and data[38:46] == struct.pack("<II", 2835, 5906)  # pixels per metre
        assert reopen(data).info["dpi"] == reopen(pil_bytes(random_pil("RGB", 7, 13), "BMP", dpi=(72, 150))).info["dpi"]
        plain = read_image(pil_bytes(random_pil("RGB", 7, 13), "BMP", dpi=(0, 0)))
        assert "dpi" not in reopen(write_image(plain)).info  # not Pillow's default 96 dpi

    def test_bmp_dpi_when_written_as_png(self) -> None:
        img = read_image(pil_bytes(random_pil("P", 7, 13), "BMP", dpi=(96, 96)))
        img.meta.update(format="PNG", transparency=2)  # BMP can't hold it: write_image writes PNG
        assert img.meta["dpi"] == [96, 96]
        after = reopen(write_image(img))
        assert after.format == "PNG" and after.info["dpi"] == pytest.approx((96, 96), abs=0.02)

    def test_gif(self) -> None:
        data = pil_bytes(random_pil("P", 7, 13), "GIF", comment=b"caf\xe9", background=3)
        img = read_image(data)
        assert img.meta["comment"] == "café" and img.meta["background"] == 3
        after = reopen(write_image(img))
        assert after.format == "GIF" and after.info["comment"] == b"caf\xe9" and after.info["background"] == 3

    def test_gif_xmp_dropped(self) -> None:
        data = pil_bytes(random_pil("P", 7, 13), "GIF")
        at = 13 + 3 * 2 ** ((data[10] & 7) + 1)  # after the header and global colour table
        xmp = b"!\xff\x0bXMP DataXMP" + b"\x05<xmp>" + b"\x00"
        img = read_image(data[:at] + xmp + data[at:])
        assert img.meta["dropped"] == ["XMP"]

    def test_meta_is_json(self) -> None:
        inputs = [rich_png(), pil_bytes(random_pil("RGB", 7, 13), "JPEG", exif=exif_bytes(), comment=b"\xff\xfe"),
                  pil_bytes(random_pil("P", 7, 13), "GIF", comment=b"x")]
        for data in inputs:
            meta = read_image(data).meta
            text = json.dumps(meta, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
            assert json.loads(text) == meta

    def test_budget(self) -> None:
        info = PngInfo()
        for i in range(3):
            info.add_text(f"Big{i}", "x" * 400_000)
        img = read_image(pil_bytes(random_pil("L", 7, 13), "PNG", pnginfo=info, dpi=(72, 72)))
        assert "text" not in img.meta and img.meta["dropped"] == ["text"] and img.meta["dpi"] == [72, 72]
        assert len(json.dumps(img.meta)) < media.META_BUDGET

    def test_malformed_metadata(self) -> None:
        img = read_image(pil_bytes(random_pil("RGB", 7, 13), "PNG"))
        for bad in ({"icc": "not base64!"}, {"text": [["key"]]}, {"gamma": -1.0}, {"chunks": [["tIME"]]}):
            with pytest.raises(CorruptError):
                write_image(Image(img.planes, {**img.meta, **bad}))

    def test_preserved_note(self) -> None:
        assert media.preserved_note({"mode": "L"}) == ""
        assert media.preserved_note({"dropped": ["EXIF", "XMP"]}) == "not preserved: EXIF, XMP"


def _png_info(kind: bytes, body: bytes) -> PngInfo:
    info = PngInfo()
    info.add(kind, body)
    return info
