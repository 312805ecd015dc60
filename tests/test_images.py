"""Images re-encoded from their pixels: no metadata survives, bombs and non-images are refused."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, PngImagePlugin

from node import images
from tests.image_samples import assert_no_metadata, jpeg_with_metadata


def test_a_phone_jpeg_loses_exif_gps_xmp_icc_and_comment_and_is_turned_upright() -> None:
    raw = jpeg_with_metadata()
    assert all(marker in raw for marker in (b"Exif", b"SecretCam", b"xmpmeta", b"secret comment"))

    cleaned = images.clean(raw)

    assert (cleaned.media_type, cleaned.extension) == ("image/jpeg", "jpg")
    assert (cleaned.width, cleaned.height) == (100, 300)  # orientation 6: rotated a quarter turn
    assert_no_metadata(cleaned.data)


def test_large_images_are_scaled_down_to_2048_on_the_long_side() -> None:
    out = io.BytesIO()
    Image.new("RGB", (4096, 1024), (0, 90, 200)).save(out, "PNG")

    cleaned = images.clean(out.getvalue())

    assert (cleaned.width, cleaned.height) == (2048, 512)
    assert Image.open(io.BytesIO(cleaned.data)).size == (2048, 512)


def test_png_text_chunks_go_and_transparency_stays() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret comment")
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>GPS</x:xmpmeta>")
    out = io.BytesIO()
    Image.new("RGBA", (20, 10), (0, 0, 0, 0)).save(out, "PNG", pnginfo=info)

    cleaned = images.clean(out.getvalue())

    assert cleaned.media_type == "image/png"
    assert_no_metadata(cleaned.data)
    assert Image.open(io.BytesIO(cleaned.data)).mode == "RGBA"


def test_a_gif_becomes_its_first_frame_as_png() -> None:
    frames = [Image.new("P", (16, 16), colour) for colour in (1, 2, 3)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], comment=b"secret comment")

    cleaned = images.clean(out.getvalue())

    assert (cleaned.media_type, cleaned.extension) == ("image/png", "png")
    result = Image.open(io.BytesIO(cleaned.data))
    assert result.format == "PNG" and getattr(result, "n_frames", 1) == 1
    assert_no_metadata(cleaned.data)


def test_webp_stays_webp() -> None:
    out = io.BytesIO()
    Image.new("RGB", (32, 16), (10, 200, 10)).save(out, "WEBP", exif=Image.Exif().tobytes())

    cleaned = images.clean(out.getvalue())

    assert (cleaned.media_type, cleaned.width, cleaned.height) == ("image/webp", 32, 16)
    assert b"EXIF" not in cleaned.data


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` × ``height`` pixels (what a decompression bomb announces)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("size", [(7681, 4320), (10_000, 10_000), (100_000, 100_000)])
def test_decompression_bombs_are_refused_before_decoding(size: tuple[int, int]) -> None:
    with pytest.raises(images.ImageRefused):
        images.clean(_png_header_only(*size))


@pytest.mark.parametrize(
    "data",
    [
        b"<!doctype html><html><script>alert(1)</script></html>",
        b"",
        jpeg_with_metadata()[:200],  # truncated
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    ],
)
def test_what_is_not_an_accepted_image_is_refused(data: bytes) -> None:
    with pytest.raises(images.ImageRefused):
        images.clean(data)


def test_other_formats_are_refused_even_when_pillow_reads_them() -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "BMP")

    with pytest.raises(images.ImageRefused):
        images.clean(out.getvalue())
