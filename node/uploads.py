"""Uploaded files: received as a stream, typed by their content, cleaned of metadata
(docs/architecture.md §5). Used by the documents space and by message attachments.

    request body ──:func:`receive` (multipart, streamed)──> ReceivedForm
        text fields (small, capped) + each file part written to a temporary file under
        ``<VBG_DATA_DIR>/tmp/`` as it arrives: never whole in memory; a part over the cap
        stops being written, is deleted, and the rest of the body is read and dropped
        so the browser gets the French error page (413) and not a reset connection
    ReceivedFile ──:func:`clean` (blocking: run it in a thread)──> CleanFile
        :func:`sniff` decides the kind from the bytes, never from the name:
          %PDF-                          → pdf    pikepdf rewrites the whole file: document
                                                   info and XMP dropped (author, creator, dates,
                                                   producer), JavaScript and page-piece data
                                                   dropped, EXIF/GPS segments cut from embedded
                                                   JPEG images, earlier revisions (incremental
                                                   updates) gone with the rewrite
          zip with ``mimetype`` first    → odt/ods/odp   meta.xml replaced by an empty one
          zip with [Content_Types].xml   → docx/xlsx/pptx  docProps core/app/custom emptied
                                            (macro-enabled files refused); in both office
                                            families embedded JPEG/PNG lose their metadata
                                            segments and chunks
          Pillow: JPEG, PNG, WebP        → re-encoded from the pixels (node.images)
          valid UTF-8 without NUL, not markup → csv (same delimiter count on every line) or txt
          anything else (HTML, SVG, scripts, executables, GIF …) → refused
        What no library removes safely (tracked changes, comments and their authors, files
        embedded in a PDF) is listed in ``CleanFile.carried`` (French): the caller shows it
        and asks the uploader to confirm before publishing.

Names given by the browser are display text only (:func:`display_name`); stored files get
random names (``node.storage``).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import html
import io
import os
import re
import secrets
import unicodedata
import weakref
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from starlette.datastructures import FormData, UploadFile

from node import images
from node.errors import BadRequest, PayloadTooLarge
from node.settings import Settings

if TYPE_CHECKING:  # Pillow is imported when a thumbnail is drawn (node.images says why)
    from PIL import Image

MAX_FIELDS_BYTES = 256 * 1024  # every text field of one form together
MAX_FILES = 4
DRAIN_FACTOR = 4  # a body over this many times the cap is cut off, not drained
CHUNK = 64 * 1024
MAX_TEXT_CHARS = 200_000  # text kept for search, per file
IMAGE_MAX_SIDE = 4096
ZIP_MAX_ENTRIES = 5_000
ZIP_MAX_UNCOMPRESSED = 300 * 1024 * 1024
ZIP_MAX_RATIO = 200  # a member inflating more than this is a zip bomb


@dataclass(frozen=True)
class Kind:
    key: str
    media_type: str
    extension: str
    label: str  # French, shown in the library


KINDS = {
    k.key: k
    for k in (
        Kind("pdf", "application/pdf", "pdf", "PDF"),
        Kind("odt", "application/vnd.oasis.opendocument.text", "odt", "Texte OpenDocument"),
        Kind("ods", "application/vnd.oasis.opendocument.spreadsheet", "ods", "Classeur OpenDocument"),
        Kind("odp", "application/vnd.oasis.opendocument.presentation", "odp", "Présentation OpenDocument"),
        Kind(
            "docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "docx",
            "Document Word",
        ),
        Kind(
            "xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xlsx",
            "Classeur Excel",
        ),
        Kind(
            "pptx",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "pptx",
            "Présentation PowerPoint",
        ),
        Kind("txt", "text/plain", "txt", "Texte"),
        Kind("csv", "text/csv", "csv", "Tableau CSV"),
        Kind("png", "image/png", "png", "Image PNG"),
        Kind("jpeg", "image/jpeg", "jpg", "Image JPEG"),
        Kind("webp", "image/webp", "webp", "Image WebP"),
    )
}
BY_MEDIA_TYPE = {k.media_type: k for k in KINDS.values()}
IMAGE_KINDS = frozenset({"png", "jpeg", "webp"})
OFFICE_KINDS = frozenset({"odt", "ods", "odp", "docx", "xlsx", "pptx"})
ACCEPTED_LABEL = "PDF, ODT, ODS, ODP, DOCX, XLSX, PPTX, TXT, CSV, PNG, JPEG ou WebP"


def refused(message: str, field_name: str = "file") -> BadRequest:
    return BadRequest(message, fields={field_name: message})


def megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} Mo"


def too_large(max_bytes: int) -> PayloadTooLarge:
    message = f"Le fichier est trop volumineux : {megabytes(max_bytes)} au plus."
    return PayloadTooLarge(message, fields={"file": message})


# ---------------------------------------------------------------- receiving


@dataclass
class ReceivedFile:
    """One file part, complete, in a temporary file only this process knows."""

    field: str
    path: Path
    size: int
    client_name: str  # display text only (display_name): never a path

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass
class ReceivedForm:
    fields: FormData
    files: dict[str, ReceivedFile]

    def file(self, name: str = "file") -> ReceivedFile | None:
        received = self.files.get(name)
        return received if received is not None and received.size > 0 else None

    def discard(self) -> None:
        for received in self.files.values():
            received.discard()


_BIDI_AND_CONTROLS = re.compile(r"[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def display_name(raw: str, limit: int = 200) -> str:
    """The last path segment of a browser-given file name, NFC, without control or
    direction-override characters (``facture\u202efdp.exe``), at most ``limit`` chars."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = _BIDI_AND_CONTROLS.sub("", unicodedata.normalize("NFC", name)).strip().strip(".")
    return name[:limit] or "fichier"


def temp_dir(settings: Settings) -> Path:
    path = settings.data_dir / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _temp_file(directory: Path) -> tuple[Path, BinaryIO]:
    path = directory / f"upload-{secrets.token_urlsafe(16)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return path, os.fdopen(fd, "wb")


class _Parts:
    """python-multipart callbacks collecting fields and files (one part at a time)."""

    def __init__(self, directory: Path, max_file_bytes: int) -> None:
        self.directory = directory
        self.max_file_bytes = max_file_bytes
        self.fields: list[tuple[str, str | UploadFile]] = []
        self.files: dict[str, ReceivedFile] = {}
        self.field_bytes = 0
        self.over = False  # a file went over the cap: stop storing anything
        self._headers: dict[bytes, bytes] = {}
        self._header_field = b""
        self._header_value = b""
        self._name = ""
        self._value = bytearray()
        self._file: ReceivedFile | None = None
        self._fh: BinaryIO | None = None

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self._headers = {}
        self._value = bytearray()
        self._file = None
        self._fh = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def on_headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            return
        if len(self.files) >= MAX_FILES or self._name in self.files:
            raise refused("Trop de fichiers envoyés.")
        path, self._fh = _temp_file(self.directory)
        client = display_name(options[b"filename"].decode("utf-8", "replace"))
        self._file = ReceivedFile(self._name, path, 0, client)
        self.files[self._name] = self._file

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.over:
            return
        if self._file is None:
            self.field_bytes += end - start
            if self.field_bytes > MAX_FIELDS_BYTES:
                raise PayloadTooLarge("Le formulaire envoyé est trop volumineux.")
            self._value += data[start:end]
            return
        assert self._fh is not None
        self._file.size += end - start
        if self._file.size > self.max_file_bytes:
            self.over = True
            self._close_file()
            return
        self._fh.write(data[start:end])

    def on_part_end(self) -> None:
        if self._file is not None:
            self._close_file()
            return
        try:
            self.fields.append((self._name, self._value.decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise BadRequest("Le formulaire envoyé est illisible (encodage invalide).") from exc

    def _close_file(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def discard(self) -> None:
        self._close_file()
        for received in self.files.values():
            received.discard()


def _boundary(content_type: str) -> bytes:
    from python_multipart.multipart import parse_options_header

    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary", b"")
    if kind != b"multipart/form-data" or not boundary or len(boundary) > 200:
        raise BadRequest("Le formulaire envoyé est illisible (fichier attendu).")
    return boundary


async def receive(
    stream: AsyncIterator[bytes], content_type: str, *, directory: Path, max_file_bytes: int
) -> ReceivedForm:
    """Read a ``multipart/form-data`` body, writing its files to temporary files of
    ``directory`` (call ``ReceivedForm.discard`` once done with them). A file over
    ``max_file_bytes``: everything written is deleted, the body is read to its end
    (up to DRAIN_FACTOR × the cap) and PayloadTooLarge is raised. Any other error
    deletes the files too."""
    from python_multipart.multipart import MultipartParser

    parts = _Parts(directory, max_file_bytes)
    parser = MultipartParser(_boundary(content_type), parts.callbacks())  # type: ignore[arg-type]
    total = 0
    try:
        async for chunk in stream:
            total += len(chunk)
            if parts.over:
                if total > DRAIN_FACTOR * max_file_bytes:
                    break
                continue
            parser.write(chunk)
            if parts.over:
                parts.discard()
        if parts.over:
            raise too_large(max_file_bytes)
        parser.finalize()
    except BaseException as exc:
        parts.discard()
        if isinstance(exc, ValueError) and not isinstance(exc, BadRequest):
            raise BadRequest("Le formulaire envoyé est illisible.") from exc
        if type(exc).__module__.startswith("python_multipart"):
            raise BadRequest("Le formulaire envoyé est illisible.") from exc
        raise
    return ReceivedForm(FormData(parts.fields), parts.files)


# ---------------------------------------------------------------- typing and cleaning


@dataclass
class CleanFile:
    """A checked file without the metadata we can remove, in a temporary file.

    ``carried``: French descriptions of what the file still carries and no library
    removes safely; the uploader must confirm before it is published."""

    path: Path
    kind: Kind
    size: int
    carried: tuple[str, ...] = ()
    text: str = ""  # extracted for search, at most MAX_TEXT_CHARS
    width: int | None = None
    height: int | None = None

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def _head(path: Path, n: int = 4096) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def sniff(path: Path) -> str:
    """The kind key of the file at ``path``, from its bytes; BadRequest (French) otherwise."""
    head = _head(path)
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return _office_kind(path)
    image = _image_kind(head)
    if image is not None:
        return image
    if _is_text(path, head):
        return "csv" if _looks_like_csv(path) else "txt"
    raise refused(f"Ce type de fichier n'est pas accepté. Formats acceptés : {ACCEPTED_LABEL}.")


def _image_kind(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


_MARKUP = re.compile(
    rb"^\s*<|<\s*(?:script|svg|html|body|iframe|object|embed|\?xml|!doctype)\b", re.IGNORECASE
)


def _is_text(path: Path, head: bytes) -> bool:
    """Valid UTF-8 all through (read in chunks), no NUL or other C0 control but tab and
    line ends, and not markup (HTML, SVG, XML): a browser must never be able to run it."""
    if _MARKUP.search(head.lstrip(b"\xef\xbb\xbf")):
        return False
    decoder = codecs.getincrementaldecoder("utf-8")()
    controls = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError:
                return False
            if controls.search(text) or _MARKUP.search(chunk[1:]):
                return False
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _looks_like_csv(path: Path) -> bool:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        lines = [line for line in (fh.readline() for _ in range(50)) if line.strip()]
    if len(lines) < 2:
        return False
    try:
        dialect = csv.Sniffer().sniff("".join(lines[:20]), delimiters=",;\t")
    except csv.Error:
        return False
    widths = {len(row) for row in csv.reader(lines, dialect)}
    return len(widths) == 1 and widths.pop() >= 2


# -------------------------------------------------------------------- zips


OOXML_MAIN = {
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml": "xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml": "pptx",
}
ODF_MIMETYPES = {
    b"application/vnd.oasis.opendocument.text": "odt",
    b"application/vnd.oasis.opendocument.spreadsheet": "ods",
    b"application/vnd.oasis.opendocument.presentation": "odp",
}
_OVERRIDE = re.compile(rb'<Override\b[^>]*?ContentType="([^"]+)"')


def _checked_zip(path: Path) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise refused("Ce fichier est endommagé ou n'est pas un document accepté.") from exc
    infos = archive.infolist()
    total = sum(i.file_size for i in infos)
    bomb = any(i.file_size > ZIP_MAX_RATIO * max(i.compress_size, 1) + CHUNK for i in infos)
    if len(infos) > ZIP_MAX_ENTRIES or total > ZIP_MAX_UNCOMPRESSED or bomb:
        archive.close()
        raise refused("Ce document est refusé : son contenu décompressé est anormalement volumineux.")
    if any(i.flag_bits & 0x1 for i in infos):
        archive.close()
        raise refused("Les documents chiffrés (protégés par mot de passe) ne sont pas acceptés.")
    return archive


def _read(archive: zipfile.ZipFile, name: str, limit: int = 64 * 1024 * 1024) -> bytes:
    with archive.open(name) as fh:
        return fh.read(limit)


def _office_kind(path: Path) -> str:
    with _checked_zip(path) as archive:
        names = archive.namelist()
        if names and names[0] == "mimetype" and "content.xml" in names:
            kind = ODF_MIMETYPES.get(_read(archive, "mimetype", 200).strip())
            if kind is not None:
                return kind
        if "[Content_Types].xml" in names:
            if any(n.lower().endswith("vbaproject.bin") for n in names):
                raise refused("Les documents contenant des macros ne sont pas acceptés.")
            types = _OVERRIDE.findall(_read(archive, "[Content_Types].xml", 1024 * 1024))
            for media_type in types:
                kind = OOXML_MAIN.get(media_type.decode("ascii", "replace"))
                if kind is not None:
                    return kind
            if any(b"macroEnabled" in t for t in types):
                raise refused("Les documents contenant des macros ne sont pas acceptés.")
    raise refused(f"Ce type de fichier n'est pas accepté. Formats acceptés : {ACCEPTED_LABEL}.")


EMPTY_PARTS = {
    "docProps/core.xml": (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        b'<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties"'
        b' xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/"'
        b' xmlns:dcmitype="http://purl.org/dc/dcmitype/"'
        b' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"></cp:coreProperties>'
    ),
    "docProps/app.xml": (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        b'<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties"'
        b' xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"></Properties>'
    ),
    "docProps/custom.xml": (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        b'<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"'
        b' xmlns:vt="http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"></Properties>'
    ),
}
_ODF_VERSION = re.compile(rb'office:version="([0-9.]{1,8})"')


def _empty_odf_meta(original: bytes) -> bytes:
    version = _ODF_VERSION.search(original)
    attribute = b' office:version="' + version.group(1) + b'"' if version else b""
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<office:document-meta xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        + attribute
        + b"><office:meta/></office:document-meta>"
    )


def strip_jpeg(data: bytes) -> bytes:
    """A JPEG without its APP1–APP15 and COM segments (EXIF, GPS, XMP, Photoshop IRB,
    comments), everything else byte for byte; APP0 (JFIF) and APP14 (Adobe, colour
    transform) stay, as decoders need them. Unparsable data is returned unchanged."""
    if not data.startswith(b"\xff\xd8"):
        return data
    out = bytearray(b"\xff\xd8")
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return data
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xDA:  # start of scan: the rest is image data
            out += data[i:]
            return bytes(out)
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        segment = data[i : i + 2 + length]
        metadata = (0xE1 <= marker <= 0xEF and marker != 0xEE) or marker == 0xFE
        if not metadata:
            out += segment
        i += 2 + length
    return data


_PNG_DROP = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}


def strip_png(data: bytes) -> bytes:
    """A PNG without its text, EXIF and time chunks; unparsable data unchanged."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data
    out = bytearray(data[:8])
    i = 8
    while i + 12 <= len(data):
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        chunk = data[i : i + 12 + length]
        if len(chunk) < 12 + length:
            return data
        if kind not in _PNG_DROP:
            out += chunk
        i += 12 + length
        if kind == b"IEND":
            return bytes(out)
    return data


def _strip_embedded_image(name: str, data: bytes) -> bytes:
    lower = name.lower()
    if lower.endswith((".jpg", ".jpeg")):
        return strip_jpeg(data)
    if lower.endswith(".png"):
        return strip_png(data)
    return data


_W_AUTHOR = re.compile(rb'w:author="([^"]{1,200})"')
_DC_CREATOR = re.compile(rb"<dc:creator>([^<]{1,200})</dc:creator>")
_XL_AUTHOR = re.compile(rb"<author>([^<]{1,200})</author>")
_P_AUTHOR = re.compile(rb'<p:cmAuthor\b[^>]*?name="([^"]{1,200})"')


def _names(pattern: re.Pattern[bytes], data: bytes) -> set[str]:
    return {html.unescape(m.decode("utf-8", "replace")) for m in pattern.findall(data)}


def _authors_note(what: str, names: set[str]) -> str:
    if not names:
        return what
    shown = ", ".join(sorted(names)[:10])
    return f"{what} (auteur·e·s : {shown})"


def _office_carried(kind: str, archive: zipfile.ZipFile) -> tuple[str, ...]:
    """What an office file keeps that we do not rewrite: tracked changes and comments."""
    names = set(archive.namelist())
    carried = []
    if kind == "docx":
        body = _read(archive, "word/document.xml") if "word/document.xml" in names else b""
        if re.search(rb"<w:(?:ins|del)\b", body):
            carried.append(_authors_note("des modifications suivies", _names(_W_AUTHOR, body)))
        if "word/comments.xml" in names:
            carried.append(
                _authors_note("des commentaires", _names(_W_AUTHOR, _read(archive, "word/comments.xml")))
            )
    elif kind == "xlsx":
        if any(n.startswith("xl/revisions/") for n in names):
            carried.append("un historique des modifications")
        comment_parts = [n for n in names if re.match(r"xl/comments\d*\.xml$", n)]
        if comment_parts:
            authors = set().union(*(_names(_XL_AUTHOR, _read(archive, n)) for n in comment_parts))
            carried.append(_authors_note("des commentaires", authors))
    elif kind == "pptx":
        if any(n.startswith("ppt/comments/") for n in names):
            authors = (
                _names(_P_AUTHOR, _read(archive, "ppt/commentAuthors.xml"))
                if "ppt/commentAuthors.xml" in names
                else set()
            )
            carried.append(_authors_note("des commentaires", authors))
    else:
        content = _read(archive, "content.xml")
        if b"<text:tracked-changes" in content:
            carried.append(_authors_note("des modifications suivies", _names(_DC_CREATOR, content)))
        if b"<office:annotation" in content:
            carried.append(_authors_note("des commentaires", _names(_DC_CREATOR, content)))
    return tuple(carried)


def _clean_office(source: Path, kind: str, target: BinaryIO) -> tuple[str, ...]:
    with _checked_zip(source) as archive, zipfile.ZipFile(target, "w") as out:
        for info in archive.infolist():
            if info.is_dir():
                continue
            data = _read(archive, info.filename, ZIP_MAX_UNCOMPRESSED)
            if info.filename in EMPTY_PARTS and kind in {"docx", "xlsx", "pptx"}:
                data = EMPTY_PARTS[info.filename]
            elif info.filename == "meta.xml" and kind in {"odt", "ods", "odp"}:
                data = _empty_odf_meta(data)
            else:
                data = _strip_embedded_image(info.filename, data)
            copy = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            copy.compress_type = info.compress_type
            copy.external_attr = 0o600 << 16
            out.writestr(copy, data)
        return _office_carried(kind, archive)


_TAGS = re.compile(rb"<[^>]{0,10000}>")
_PARAGRAPH_ENDS = re.compile(rb"</(?:w:p|a:p|text:p|text:h|si|row|table:table-row)>")


def _xml_text(data: bytes) -> str:
    """Visible text of an office XML part, without an XML parser (no entities are
    expanded beyond the five predefined ones and character references)."""
    spaced = _PARAGRAPH_ENDS.sub(b"\n", data)
    text = _TAGS.sub(b" ", spaced).decode("utf-8", "replace")
    return " ".join(html.unescape(text).split())


def _office_text_parts(kind: str, names: list[str]) -> list[str]:
    if kind == "docx":
        return [n for n in names if n == "word/document.xml"]
    if kind == "xlsx":
        return [n for n in names if n == "xl/sharedStrings.xml"]
    if kind == "pptx":
        return sorted(n for n in names if re.match(r"ppt/slides/slide\d+\.xml$", n))
    return ["content.xml"]


def office_text(path: Path, kind: str) -> str:
    with _checked_zip(path) as archive:
        texts = []
        size = 0
        for name in _office_text_parts(kind, archive.namelist()):
            text = _xml_text(_read(archive, name))
            texts.append(text)
            size += len(text)
            if size > MAX_TEXT_CHARS:
                break
    return "\n".join(texts)[:MAX_TEXT_CHARS]


# --------------------------------------------------------------------- PDF


def _pdf_carried(pdf: object) -> list[str]:
    """Files embedded in the PDF (their own metadata is out of our reach) are reported;
    annotations keep their text but lose their author and dates (``/T``, ``/M``)."""
    import pikepdf

    assert isinstance(pdf, pikepdf.Pdf)
    carried = []
    attachments = list(pdf.attachments.keys())
    if attachments:
        carried.append(
            "des fichiers joints : " + ", ".join(display_name(str(a), 80) for a in attachments[:10])
        )
    for page in pdf.pages:
        for annot in page.obj.get("/Annots", []) or []:
            if isinstance(annot, pikepdf.Dictionary):
                for key in ("/T", "/M", "/CreationDate"):
                    if key in annot:
                        del annot[key]
    return carried


def _pdf_strip(pdf: object) -> None:
    import pikepdf

    assert isinstance(pdf, pikepdf.Pdf)
    if "/Info" in pdf.trailer:
        del pdf.trailer["/Info"]
    root = pdf.Root
    for key in ("/Metadata", "/PieceInfo", "/OpenAction", "/AA", "/SpiderInfo"):
        if key in root:
            del root[key]
    names = root.get("/Names")
    if isinstance(names, pikepdf.Dictionary) and "/JavaScript" in names:
        del names["/JavaScript"]
    for page in pdf.pages:
        for key in ("/PieceInfo", "/AA", "/Metadata"):
            if key in page.obj:
                del page.obj[key]
    for obj in pdf.objects:
        if not isinstance(obj, pikepdf.Stream):
            continue
        if "/Metadata" in obj:
            del obj["/Metadata"]
        if obj.get("/Subtype") == pikepdf.Name.Image and obj.get("/Filter") == pikepdf.Name.DCTDecode:
            raw = obj.read_raw_bytes()
            stripped = strip_jpeg(raw)
            if stripped is not raw and stripped != raw:
                obj.write(stripped, filter=pikepdf.Name.DCTDecode)


def _clean_pdf(source: Path, target: Path) -> tuple[str, ...]:
    import pikepdf

    try:
        with pikepdf.open(source) as pdf:
            if pdf.is_encrypted:
                raise refused("Les PDF chiffrés (protégés par mot de passe) ne sont pas acceptés.")
            carried = _pdf_carried(pdf)
            _pdf_strip(pdf)
            pdf.save(target, fix_metadata_version=False, deterministic_id=True)
    except pikepdf.PasswordError as exc:
        raise refused("Les PDF chiffrés (protégés par mot de passe) ne sont pas acceptés.") from exc
    except pikepdf.PdfError as exc:
        raise refused("Ce PDF est endommagé et ne peut pas être accepté.") from exc
    return tuple(carried)


def pdf_text(path: Path, max_pages: int = 300) -> str:
    import pypdfium2 as pdfium

    texts: list[str] = []
    size = 0
    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError:
        return ""
    with contextlib.closing(pdf):
        for index in range(min(len(pdf), max_pages)):
            page = pdf[index]
            textpage = page.get_textpage()
            text = textpage.get_text_bounded()
            textpage.close()
            page.close()
            texts.append(" ".join(text.split()))
            size += len(texts[-1])
            if size > MAX_TEXT_CHARS:
                break
    return "\n".join(texts)[:MAX_TEXT_CHARS]


# ------------------------------------------------------------------ cleaning


def _clean_image(source: Path, key: str, directory: Path) -> CleanFile:
    try:
        image = images.clean(source.read_bytes(), max_side=IMAGE_MAX_SIDE, formats=("JPEG", "PNG", "WEBP"))
    except images.ImageRefused as exc:
        raise refused("Cette image est endommagée ou d'un format non accepté.") from exc
    kind = BY_MEDIA_TYPE[image.media_type]
    path, fh = _temp_file(directory)
    with fh:
        fh.write(image.data)
    return CleanFile(path, kind, len(image.data), width=image.width, height=image.height)


def _copy_text(source: Path, key: str, directory: Path) -> CleanFile:
    path, fh = _temp_file(directory)
    with fh, open(source, "rb") as src:
        while chunk := src.read(CHUNK):
            fh.write(chunk)
    with open(source, encoding="utf-8-sig", errors="replace") as text:
        extracted = text.read(MAX_TEXT_CHARS)
    return CleanFile(path, KINDS[key], source.stat().st_size, text=extracted)


def clean(received: Path, directory: Path) -> CleanFile:
    """Type the file by content and write a cleaned copy to a new temporary file of
    ``directory`` (the received file is left to its owner). Blocking and CPU-bound:
    call it in a thread. BadRequest with a French message when the file is refused."""
    key = sniff(received)
    if key in IMAGE_KINDS:
        return _clean_image(received, key, directory)
    if key in {"txt", "csv"}:
        return _copy_text(received, key, directory)
    path, fh = _temp_file(directory)
    try:
        if key == "pdf":
            fh.close()
            carried = _clean_pdf(received, path)
            text = pdf_text(path)
        else:
            with fh:
                carried = _clean_office(received, key, fh)
            text = office_text(path, key)
    except BaseException:
        fh.close()
        path.unlink(missing_ok=True)
        raise
    return CleanFile(path, KINDS[key], path.stat().st_size, carried=carried, text=text)


# ------------------------------------------------------------- in a thread

# One file cleaned at a time per process: rewriting a 25 MB PDF or decoding a large
# image takes tens of MB for a moment (bench/documents.py), and a small node has little.
_cleaning: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _semaphore() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    semaphore = _cleaning.get(loop)
    if semaphore is None:
        semaphore = _cleaning[loop] = asyncio.Semaphore(1)
    return semaphore


async def clean_in_thread(received: Path, directory: Path) -> CleanFile:
    """:func:`clean` in a worker thread, one file at a time in this process."""
    async with _semaphore():
        return await asyncio.to_thread(clean, received, directory)


async def thumbnail_in_thread(path: Path, kind: str) -> bytes | None:
    async with _semaphore():
        return await asyncio.to_thread(thumbnail, path, kind)


# --------------------------------------------------------------- thumbnails


THUMBNAIL_SIDE = 320


def thumbnail(path: Path, kind: str) -> bytes | None:
    """A small JPEG (PNG for images with transparency) of an image or of a PDF's first
    page, without metadata; None for other kinds or when it cannot be drawn."""
    from PIL import Image

    picture: Image.Image | None
    try:
        if kind in IMAGE_KINDS:
            with Image.open(path, formats=("JPEG", "PNG", "WEBP")) as opened:
                opened.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
                picture = opened.convert("RGB")
        elif kind == "pdf":
            picture = _pdf_first_page(path)
        else:
            return None
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    if picture is None:
        return None
    out = io.BytesIO()
    Image.frombytes("RGB", picture.size, picture.tobytes()).save(out, "JPEG", quality=80)
    return out.getvalue()


def _pdf_first_page(path: Path) -> Image.Image | None:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError:
        return None
    with contextlib.closing(pdf):
        if len(pdf) == 0:
            return None
        page = pdf[0]
        width, height = page.get_size()
        scale = THUMBNAIL_SIDE / max(width, height, 1)
        bitmap = page.render(scale=scale)
        picture = bitmap.to_pil().convert("RGB")
        bitmap.close()
        page.close()
        result: Image.Image | None = picture
        return result
