"""Images carrying metadata (GPS, camera, comments, ICC profile) and the check that a
cleaned image carries none."""

from __future__ import annotations

import io

from PIL import ExifTags, Image, ImageCms

GPS_MARKERS = (b"Exif", b"GPS", b"SecretCam", b"xmpmeta", b"secret comment", b"ICC_PROFILE")


def jpeg_with_metadata(size: tuple[int, int] = (300, 100), orientation: int = 6) -> bytes:
    """A JPEG as a phone writes it: EXIF (camera, orientation, GPS position), XMP, ICC, a comment."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "SecretCam"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps.update({1: "S", 2: (2.0, 30.0, 36.0), 3: "E", 4: (28.0, 51.0, 36.0)})
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(
        out,
        "JPEG",
        exif=exif.tobytes(),
        icc_profile=icc,
        comment=b"secret comment",
        xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/">GPSLatitude 2,30.6S</x:xmpmeta>',
    )
    return out.getvalue()


def assert_no_metadata(data: bytes) -> None:
    for marker in GPS_MARKERS:
        assert marker not in data, marker
    image = Image.open(io.BytesIO(data))
    assert dict(image.getexif()) == {}
    assert not {"exif", "icc_profile", "xmp", "comment", "XML:com.adobe.xmp"} & set(image.info)
