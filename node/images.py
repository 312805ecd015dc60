"""Images made safe to store and serve (docs/architecture.md §5): type by content, an allowlist,
pixels re-encoded so that no metadata survives.

    bytes ──Pillow, formats JPEG/PNG/WebP/GIF only (the bytes decide, not a header)──>
          ──pixel count ≤ MAX_PIXELS before decoding (decompression bombs)──>
          ──first frame, EXIF orientation applied, long side ≤ MAX_SIDE──>
          ──a NEW image from the raw pixels (no EXIF, GPS, XMP, ICC, comments, text chunks)──>
          ──JPEG → JPEG, PNG and GIF → PNG, WebP → WebP──> CleanImage

CPU-bound: callers in an event loop run :func:`clean` in a thread.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

# Pillow is imported when an image is cleaned: ~2 MB a web process that never does is spared.
if TYPE_CHECKING:
    from PIL import Image

MAX_SIDE = 2048
# 7680 × 4320, the pixel limit Mastodon also uses: larger images are refused before
# decoding (an RGBA copy of such an image is already ~130 MB).
MAX_PIXELS = 33_177_600
FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
# Source format → (output format, media type, file extension).
OUTPUTS = {
    "JPEG": ("JPEG", "image/jpeg", "jpg"),
    "PNG": ("PNG", "image/png", "png"),
    "GIF": ("PNG", "image/png", "png"),
    "WEBP": ("WEBP", "image/webp", "webp"),
}


class ImageRefused(Exception):
    """Not an image we accept: unknown format, damaged, too many pixels."""


@dataclass(frozen=True)
class CleanImage:
    data: bytes
    media_type: str
    extension: str
    width: int
    height: int


def _open(data: bytes, formats: tuple[str, ...]) -> Image.Image:
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=formats)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise ImageRefused("too many pixels") from exc
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise ImageRefused("not an image of an accepted format") from exc
    if image.width < 1 or image.height < 1 or image.width * image.height > MAX_PIXELS:
        raise ImageRefused(f"image of {image.width}×{image.height} pixels refused")
    return image


def _pixels(image: Image.Image, max_side: int) -> Image.Image:
    """The first frame, upright and at most ``max_side`` on its long side, as RGB or RGBA."""
    from PIL import Image, ImageOps

    try:
        image.seek(0)
        image.load()
        upright = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise ImageRefused("damaged image") from exc
    alpha = upright.mode in ("RGBA", "LA", "PA") or (upright.mode == "P" and "transparency" in upright.info)
    converted = upright.convert("RGBA" if alpha else "RGB")
    converted.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    # A new image built from the pixel data alone: whatever ``info`` the decoder
    # filled (exif, icc_profile, xmp, comment, text chunks, dpi …) stays behind.
    return Image.frombytes(converted.mode, converted.size, converted.tobytes())


def clean(data: bytes, *, max_side: int = MAX_SIDE, formats: tuple[str, ...] = FORMATS) -> CleanImage:
    """The image in ``data`` re-encoded without metadata; ImageRefused otherwise.
    ``formats`` narrows the accepted formats (uploads take no GIF)."""
    from PIL import Image

    image = _open(data, formats)
    source = image.format or ""
    if source not in OUTPUTS:
        raise ImageRefused("format not accepted")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            pixels = _pixels(image, max_side)
        except Image.DecompressionBombWarning as exc:
            raise ImageRefused("too many pixels") from exc
    fmt, media_type, extension = OUTPUTS[source]
    if fmt == "JPEG" and pixels.mode == "RGBA":
        fmt, media_type, extension = OUTPUTS["PNG"]
    out = io.BytesIO()
    if fmt == "JPEG":
        pixels.save(out, "JPEG", quality=85, optimize=True)
    elif fmt == "WEBP":
        pixels.save(out, "WEBP", quality=85)
    else:
        pixels.save(out, "PNG")
    return CleanImage(out.getvalue(), media_type, extension, pixels.width, pixels.height)
