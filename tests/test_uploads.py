"""Uploads: streamed with a cap, typed by content, metadata removed (read back with libraries)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pikepdf
import pytest
from PIL import Image

from node import storage, uploads
from node.errors import BadRequest, PayloadTooLarge
from tests.samples_uploads import AUTHOR, docx, jpeg_with_gps, odt, pdf_with_author

BOUNDARY = "----vbgtestboundary"


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> bytes:
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, (filename, data) in files.items():
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


async def stream(body: bytes, chunk: int = 65536) -> AsyncIterator[bytes]:
    for i in range(0, len(body), chunk):
        yield body[i : i + chunk]


async def zeros(total: int, chunk: int = 1024 * 1024) -> AsyncIterator[bytes]:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="gros.pdf"\r\n\r\n'
    yield head.encode() + b"%PDF-1.4\n"
    sent = 0
    while sent < total:
        yield b"\0" * chunk
        sent += chunk
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def files_in(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def clean_bytes(tmp_path: Path, data: bytes) -> uploads.CleanFile:
    source = tmp_path / "received"
    source.write_bytes(data)
    return uploads.clean(source, tmp_path)


async def test_a_form_is_streamed_to_a_temporary_file_and_its_fields_read(tmp_path: Path) -> None:
    body = multipart({"title": "Protocole", "csrf_token": "t"}, {"file": ("../../etc/passwd", b"bonjour\n")})

    received = await uploads.receive(stream(body), CONTENT_TYPE, directory=tmp_path, max_file_bytes=1000)

    upload = received.file("file")
    assert upload is not None and upload.size == 8
    assert received.fields["title"] == "Protocole"
    assert upload.path.parent == tmp_path and upload.path.read_bytes() == b"bonjour\n"
    assert upload.client_name == "passwd"  # display text only, the path is gone
    received.discard()
    assert files_in(tmp_path) == []


async def test_thirty_megabytes_are_refused_in_french_and_nothing_stays_on_disk(tmp_path: Path) -> None:
    with pytest.raises(PayloadTooLarge) as refused:
        await uploads.receive(
            zeros(30 * 1024 * 1024), CONTENT_TYPE, directory=tmp_path, max_file_bytes=25 * 1024 * 1024
        )

    assert refused.value.message == "Le fichier est trop volumineux : 25 Mo au plus."
    assert files_in(tmp_path) == []


async def test_a_broken_body_leaves_nothing_on_disk(tmp_path: Path) -> None:
    body = multipart({}, {"file": ("a.txt", b"x" * 5000)})[:3000]  # cut mid-file

    received = await uploads.receive(
        stream(body, 1000), CONTENT_TYPE, directory=tmp_path, max_file_bytes=10_000
    )
    # python-multipart accepts a truncated body as far as it goes; the caller discards
    received.discard()
    assert files_in(tmp_path) == []
    with pytest.raises(BadRequest):
        await uploads.receive(stream(b"garbage"), "text/plain", directory=tmp_path, max_file_bytes=10)


@pytest.mark.parametrize(
    "name",
    ["facture\u202efdp.exe", "..\\..\\windows\\system32", "x" * 500, "\u0000nul", "ÉTÉ.pdf", "...", ""],
)
def test_browser_names_are_display_text_only(name: str) -> None:
    shown = uploads.display_name(name)

    assert "/" not in shown and "\\" not in shown and "\u202e" not in shown and "\x00" not in shown
    assert 0 < len(shown) <= 200 and not shown.startswith(".")


def test_stored_names_are_random_and_foreign_names_are_refused(tmp_path: Path) -> None:
    store = storage.LocalStorage(tmp_path, "documents")
    for bad in (
        "../secret_key",
        "..%2Fsecret_key",
        "ＡＡ" * 16 + ".pdf",
        "a" * 32 + ".exe",
        "a" * 32 + ".pdf/..",
    ):
        with pytest.raises(storage.StorageError):
            store.local_path(bad)
    assert storage.new_name("pdf") != storage.new_name("pdf")


async def test_local_storage_puts_opens_measures_and_deletes(tmp_path: Path) -> None:
    store = storage.LocalStorage(tmp_path, "documents")
    source = tmp_path / "incoming"
    source.write_bytes(b"%PDF-1.4 hello")

    name = await store.put_file(source, "pdf")
    streamed = await store.put(stream(b"abc" * 1000, 7), "txt")

    assert not source.exists() and await store.size(name) == 14
    with await store.open(streamed) as fh:
        assert fh.read() == b"abc" * 1000
    await store.delete(name)
    await store.delete(name)  # twice: not an error
    assert sorted(p.name for p in (tmp_path / "documents").iterdir()) == [streamed]


def test_a_jpeg_with_gps_comes_back_without_any_metadata(tmp_path: Path) -> None:
    cleaned = clean_bytes(tmp_path, jpeg_with_gps())

    data = cleaned.path.read_bytes()
    assert cleaned.kind.key == "jpeg" and cleaned.kind.media_type == "image/jpeg"
    image = Image.open(io.BytesIO(data))
    assert dict(image.getexif()) == {} and "comment" not in image.info
    assert b"SecretCam" not in data and AUTHOR.encode() not in data and b"GPS" not in data


def test_a_pdf_with_author_metadata_comes_back_without_it(tmp_path: Path) -> None:
    raw = pdf_with_author()
    assert AUTHOR.encode() in raw and b"SecretCam" in raw

    cleaned = clean_bytes(tmp_path, raw)

    assert cleaned.kind.key == "pdf"
    with pikepdf.open(cleaned.path) as pdf:
        assert (
            "/Author" not in pdf.docinfo and "/Creator" not in pdf.docinfo and "/Producer" not in pdf.docinfo
        )
        assert "/Metadata" not in pdf.Root
        with pdf.open_metadata() as meta:
            assert "dc:creator" not in meta
    data = cleaned.path.read_bytes()
    assert AUTHOR.encode() not in data and b"SecretCam" not in data and b"SecretWriter" not in data
    assert "Protocole de prise en charge" in cleaned.text
    assert cleaned.carried == ()  # the annotation stays, without its author
    assert uploads.thumbnail(cleaned.path, "pdf") is not None


def test_office_files_lose_their_properties_and_their_images_metadata(tmp_path: Path) -> None:
    for raw, key in ((docx(), "docx"), (odt(), "odt")):
        cleaned = clean_bytes(tmp_path, raw)

        assert cleaned.kind.key == key
        with zipfile.ZipFile(cleaned.path) as archive:
            for name in archive.namelist():
                data = archive.read(name)
                assert AUTHOR.encode() not in data and b"SecretCam" not in data, name
                assert b"<cp:revision>" not in data and b"editing-cycles" not in data
            if key == "odt":
                assert archive.namelist()[0] == "mimetype"
                assert archive.getinfo("mimetype").compress_type == zipfile.ZIP_STORED
        assert ("Fiche pratique : accueil" if key == "docx" else "Rapport annuel") in cleaned.text
        assert cleaned.carried == ()


def test_tracked_changes_are_shown_to_the_uploader_with_their_authors(tmp_path: Path) -> None:
    cleaned = clean_bytes(tmp_path, docx(tracked=True))

    assert cleaned.carried == (f"des modifications suivies (auteur·e·s : {AUTHOR})",)


@pytest.mark.parametrize(
    "data",
    [
        b"<html><body><script>alert(1)</script></body></html>",
        b"\xef\xbb\xbf  <!DOCTYPE html><html></html>",
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
        b"GIF89a\x01\x00\x01\x00",
        b"\xff\xd8\xff\xe0 not really a jpeg <script>",
        b"MZ\x90\x00 an executable",
        b"texte\x00binaire",
        b"bonjour \xff\xfe latin-1",
        b"Bonjour\n" * 100 + b"<script>alert(1)</script>",
    ],
)
def test_html_svg_and_disguised_files_are_refused(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(BadRequest):
        clean_bytes(tmp_path, data)
    assert [p.name for p in tmp_path.iterdir()] == ["received"]


def test_a_macro_enabled_or_bomb_zip_is_refused(tmp_path: Path) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>")
        archive.writestr("word/vbaProject.bin", b"macro")
    with pytest.raises(BadRequest, match="macros"):
        clean_bytes(tmp_path, out.getvalue())
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", b"\0" * (50 * 1024 * 1024))
    with pytest.raises(BadRequest, match="volumineux"):
        clean_bytes(tmp_path, bomb.getvalue())


def test_text_and_csv_are_told_apart_by_content(tmp_path: Path) -> None:
    assert clean_bytes(tmp_path, "nom;âge;ville\nA;3;Goma\nB;4;Bukavu\n".encode()).kind.key == "csv"
    assert (
        clean_bytes(tmp_path, "Compte rendu de la réunion.\nPoints : accueil, suivi.\n".encode()).kind.key
        == "txt"
    )
