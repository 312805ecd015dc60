"""Files as members' devices make them, metadata included, for upload tests."""

from __future__ import annotations

import io
import zipfile

import pikepdf
from PIL import ExifTags, Image

AUTHOR = "Dr Marie Secret"


def jpeg_with_gps(size: tuple[int, int] = (64, 48)) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SecretCam"
    exif[ExifTags.Base.Artist] = AUTHOR
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps.update({1: "S", 2: (2.0, 30.0, 36.0), 3: "E", 4: (28.0, 51.0, 36.0)})
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, "JPEG", exif=exif.tobytes(), comment=b"secret comment")
    return out.getvalue()


def pdf_with_author(text: str = "Protocole de prise en charge", with_image: bool = True) -> bytes:
    """A one-page PDF with document info, XMP metadata, a GPS-tagged JPEG on its page,
    an annotation signed by its author and some text."""
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(300, 200))
    page = pdf.pages[0]
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica
        )
    )
    resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    content = f"BT /F1 12 Tf 20 150 Td ({text}) Tj ET".encode("latin-1")
    if with_image:
        jpeg = jpeg_with_gps()
        image = pikepdf.Stream(pdf, jpeg)
        image.Type = pikepdf.Name.XObject
        image.Subtype = pikepdf.Name.Image
        image.Width, image.Height = 64, 48
        image.ColorSpace = pikepdf.Name.DeviceRGB
        image.BitsPerComponent = 8
        image.Filter = pikepdf.Name.DCTDecode
        resources.XObject = pikepdf.Dictionary(Im1=image)
        content += b" q 64 0 0 48 20 20 cm /Im1 Do Q"
    page.obj.Resources = resources
    page.obj.Contents = pdf.make_stream(content)
    page.obj.Annots = pdf.make_indirect(
        pikepdf.Array(
            [
                pikepdf.Dictionary(
                    Type=pikepdf.Name.Annot,
                    Subtype=pikepdf.Name.Text,
                    Rect=[10, 10, 30, 30],
                    Contents=pikepdf.String("à relire"),
                    T=pikepdf.String(AUTHOR),
                )
            ]
        )
    )
    pdf.docinfo["/Author"] = AUTHOR
    pdf.docinfo["/Creator"] = "SecretWriter 1.0"
    pdf.docinfo["/Producer"] = "SecretProducer"
    with pdf.open_metadata(set_pikepdf_as_editor=False) as meta:
        meta["dc:creator"] = [AUTHOR]
        meta["xmp:CreatorTool"] = "SecretWriter 1.0"
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Default Extension="jpeg" ContentType="image/jpeg"/>'
    b'<Override PartName="/word/document.xml"'
    b' ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
    b'<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
    b"</Types>"
)
CORE = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties"'
    b' xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>' + AUTHOR.encode() + b"</dc:creator>"
    b"<cp:lastModifiedBy>" + AUTHOR.encode() + b"</cp:lastModifiedBy><cp:revision>42</cp:revision>"
    b"</cp:coreProperties>"
)


def docx(body: str = "Fiche pratique : accueil", tracked: bool = False) -> bytes:
    change = f'<w:ins w:id="1" w:author="{AUTHOR}"><w:r><w:t>ajout</w:t></w:r></w:ins>' if tracked else ""
    document = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
        f"<w:p><w:r><w:t>{body}</w:t></w:r>{change}</w:p></w:body></w:document>"
    ).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("word/document.xml", document)
        archive.writestr("docProps/core.xml", CORE)
        archive.writestr("word/media/image1.jpeg", jpeg_with_gps())
    return out.getvalue()


def odt(body: str = "Rapport annuel") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            zipfile.ZipInfo("mimetype"), b"application/vnd.oasis.opendocument.text", zipfile.ZIP_STORED
        )
        archive.writestr(
            "content.xml",
            '<?xml version="1.0" encoding="UTF-8"?><office:document-content'
            ' xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
            ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.3">'
            f"<office:body><office:text><text:p>{body}</text:p></office:text></office:body>"
            "</office:document-content>",
        )
        archive.writestr(
            "meta.xml",
            '<?xml version="1.0" encoding="UTF-8"?><office:document-meta'
            ' xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
            ' xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0" office:version="1.3">'
            f"<office:meta><meta:initial-creator>{AUTHOR}</meta:initial-creator>"
            "<meta:editing-cycles>17</meta:editing-cycles></office:meta></office:document-meta>",
        )
    return out.getvalue()
