"""Encryption at rest for private messages (docs/architecture.md §5): AES-256-GCM from ``cryptography``.

Two levels of keys::

    node key (VBG_MESSAGES_KEY, or VBG_DATA_DIR/messages_key; never in PostgreSQL)
      └── wraps ──▶ one random key per conversation (conversations.wrapped_key, with key_id)
                      └── seals ──▶ subject, bodies, attachments, outgoing activities

A sealed value is ``nonce (12 bytes) ‖ ciphertext+tag``; its associated data names what it
is (``conversation 12 subject`` …), so a ciphertext copied into another row or column does
not open there. The node key is identified by a short fingerprint (``key_id``) stored next
to each wrapped key: a keyring may hold several node keys (the first one wraps, every
one unwraps), which is how ``vbg-node admin rotate-messages-key`` re-wraps without ever
having a conversation it cannot open.

What this protects against, and what not: a database dump, a backup or a stolen disk
without the key file shows only ciphertext. Someone controlling the running server (or
holding both the database and the key) reads everything: the server decrypts to show
the messages to their participants.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

if TYPE_CHECKING:
    from node.settings import Settings

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_FILE = "messages_key"
# Conversations whose key a process keeps unwrapped (an AES-GCM context, ~2.6 KB each):
# the conversations read lately, so a page of a conversation or of the list does not
# unwrap and set up a key it used a moment ago.
CONVERSATION_CIPHERS = 1024


class KeyringError(Exception):
    """The node key is missing, malformed, or does not open a stored value."""


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode("ascii")


def decode_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode("ascii") + b"==")
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise KeyringError("a messages key is not valid base64") from exc
    if len(key) != KEY_BYTES:
        raise KeyringError(f"a messages key must be {KEY_BYTES} bytes (base64), got {len(key)}")
    return key


def key_id(key: bytes) -> str:
    """A key's fingerprint: stored with what it wraps, reveals nothing of the key."""
    return hashlib.sha256(b"vbg-messages-key:" + key).hexdigest()[:16]


class Cipher:
    """AES-256-GCM with one key (its key schedule computed once: a page opening twenty
    messages pays it once, not twenty times)."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        if len(sealed) < NONCE_BYTES + 16:
            raise KeyringError("sealed value too short")
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise KeyringError("sealed value does not open with this key") from exc


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    return Cipher(key).seal(plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    return Cipher(key).open(sealed, aad)


@dataclass(frozen=True)
class Wrapped:
    key_id: str
    wrapped: bytes


class Keyring:
    """The node keys: ``keys[0]`` wraps new conversation keys, all of them unwrap."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise KeyringError("no messages key")
        self.keys = list(keys)
        self._by_id = {key_id(k): k for k in keys}
        self._ciphers = {key_id(k): Cipher(k) for k in keys}
        # (conversation id, node key id, wrapped key) -> the conversation's cipher; in
        # memory only, least recently used first, emptied by :meth:`forget`.
        self._conversations: OrderedDict[tuple[int, str, bytes], Cipher] = OrderedDict()

    @property
    def current_id(self) -> str:
        return key_id(self.keys[0])

    def ids(self) -> list[str]:
        return [key_id(k) for k in self.keys]

    def wrap(self, conversation_key: bytes, conversation_id: int) -> Wrapped:
        sealed = self._ciphers[self.current_id].seal(conversation_key, _wrap_aad(conversation_id))
        return Wrapped(self.current_id, sealed)

    def unwrap(self, wrapped: Wrapped, conversation_id: int) -> bytes:
        cipher = self._ciphers.get(wrapped.key_id)
        if cipher is None:
            raise KeyringError(f"messages key {wrapped.key_id} is not in the keyring")
        return cipher.open(wrapped.wrapped, _wrap_aad(conversation_id))

    def conversation_cipher(self, wrapped: Wrapped, conversation_id: int) -> Cipher:
        """The cipher of a conversation's key: unwrapped once, then kept for the
        ``CONVERSATION_CIPHERS`` conversations used last. An entry answers only the very
        wrapped value (and conversation) it was unwrapped from: a key re-wrapped by a
        rotation, or a row changed, is unwrapped afresh (and authenticated again)."""
        entry = (conversation_id, wrapped.key_id, wrapped.wrapped)
        cipher = self._conversations.get(entry)
        if cipher is not None:
            self._conversations.move_to_end(entry)
            return cipher
        cipher = Cipher(self.unwrap(wrapped, conversation_id))
        self._conversations[entry] = cipher
        if len(self._conversations) > CONVERSATION_CIPHERS:
            self._conversations.popitem(last=False)
        return cipher

    def forget(self) -> None:
        """Drop every unwrapped conversation key (the node keys changed)."""
        self._conversations.clear()

    def seal_transit(self, data: bytes, label: str) -> str:
        """Seal a short-lived value (a private message waiting in a queue) directly
        under the current node key: ``key_id.base64``."""
        sealed = seal(self.keys[0], data, _transit_aad(label))
        return f"{self.current_id}.{base64.b64encode(sealed).decode('ascii')}"

    def open_transit(self, text: str, label: str) -> bytes:
        kid, _, data = text.partition(".")
        key = self._by_id.get(kid)
        if key is None:
            raise KeyringError(f"messages key {kid} is not in the keyring")
        try:
            sealed = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KeyringError("sealed value is not base64") from exc
        return open_sealed(key, sealed, _transit_aad(label))

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """Keys separated by commas or new lines, the current one first."""
        parts = [p for p in text.replace(",", "\n").split() if p]
        return cls([decode_key(p) for p in parts])

    def dump(self) -> str:
        return "".join(encode_key(k) + "\n" for k in self.keys)


def _wrap_aad(conversation_id: int) -> bytes:
    return f"vbg conversation {conversation_id} key".encode()


def _transit_aad(label: str) -> bytes:
    return f"vbg transit {label}".encode()


def field_aad(conversation_id: int, what: str) -> bytes:
    """Associated data of one sealed field, e.g. ``field_aad(12, "subject")``."""
    return f"vbg conversation {conversation_id} {what}".encode()


# -- where the keyring lives -----------------------------------------------------------


def key_file(data_dir: Path) -> Path:
    return data_dir / KEY_FILE


def load_or_create_file(data_dir: Path) -> str:
    """The keyring text of ``VBG_DATA_DIR/messages_key``, created (mode 0600) on first run."""
    from node.settings import create_once

    return create_once(key_file(data_dir), encode_key(new_key()) + "\n")


def write_file(data_dir: Path, keyring: Keyring) -> None:
    """Replace the key file atomically (a crash leaves the old or the new one, whole)."""
    path = key_file(data_dir)
    tmp = path.with_name(f".{KEY_FILE}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(keyring.dump())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


_keyrings: dict[str, Keyring] = {}


def keyring_of(settings: Settings) -> Keyring:
    """The node's keyring (parsed once per process and keyring text)."""
    secret = settings.messages_key
    text = secret.reveal() if secret is not None else load_or_create_file(settings.data_dir)
    keyring = _keyrings.get(text)
    if keyring is None:
        # New node keys (a rotation, or a retired key forgotten): the conversation keys
        # unwrapped under the former keyrings are dropped.
        for former in _keyrings.values():
            former.forget()
        keyring = _keyrings[text] = Keyring.parse(text)
    return keyring
