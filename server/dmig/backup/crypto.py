"""Optional encryption of backup files, with a key that only ever lives in an environment variable.

The scheme is AES-256-GCM over 1 MiB chunks (the STREAM construction): each chunk's nonce is a
random per-file prefix, the chunk counter and a last-chunk flag, so a reordered, dropped or
truncated chunk fails authentication instead of restoring wrong data, and memory stays bounded
whatever the file size. It uses the ``cryptography`` package only if it is importable: we never
ship a home-made cipher, so without it a request for encryption is refused with the install hint.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import struct
from typing import Any, BinaryIO

from dmig.errors import CorruptFile, InvalidInput, NotFound

SCHEME = "aes-256-gcm-chunked"
MAGIC = b"DMIGAES1"
CHUNK = 1024 * 1024
_PREFIX = 7
_TAG = 16
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KEY_HINT = (
    "the key must be 32 random bytes, base64 or hex encoded; generate one with "
    '`python -c "import os,base64;print(base64.urlsafe_b64encode(os.urandom(32)).decode())"`'
)


def _aesgcm() -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise InvalidInput(
            "encryption needs the `cryptography` package, which is not installed: run `pip install cryptography` "
            "in dmig's environment, or back up without encryption",
            reason="encryption_unavailable",
        ) from None
    return AESGCM


def available() -> bool:
    try:
        _aesgcm()
    except InvalidInput:
        return False
    return True


def load_key(env_name: str) -> bytes:
    """The 32-byte key from ``$env_name``; errors name the variable, never echo its value."""
    if not _ENV_NAME.match(env_name or ""):
        raise InvalidInput(f"{env_name!r} is not an environment variable name", reason="bad_key_env")
    _aesgcm()
    raw = os.environ.get(env_name)
    if not raw or not raw.strip():
        raise NotFound(f"environment variable {env_name} (the backup key) is not set", variable=env_name)
    text = raw.strip()
    key: bytes | None = None
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        key = bytes.fromhex(text)
    else:
        try:
            key = base64.b64decode(text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            key = None
    if key is None or len(key) != 32:
        raise InvalidInput(f"environment variable {env_name} does not hold a valid key: {KEY_HINT}")
    return key


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + struct.pack(">I", counter) + (b"\x01" if last else b"\x00")


class EncryptingWriter(io.RawIOBase):
    """A write-only binary stream that encrypts whatever passes through it, chunk by chunk."""

    def __init__(self, out: BinaryIO, key: bytes) -> None:
        super().__init__()
        self._out = out
        self._aead = _aesgcm()(key)
        self._prefix = os.urandom(_PREFIX)
        self._buf = bytearray()
        self._counter = 0
        out.write(MAGIC + self._prefix)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = bytes(data)
        self._buf += view
        while len(self._buf) > CHUNK:
            self._emit(bytes(self._buf[:CHUNK]), last=False)
            del self._buf[:CHUNK]
        return len(view)

    def _emit(self, plain: bytes, last: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._prefix, self._counter, last), plain, MAGIC)
        self._out.write(struct.pack(">I", len(sealed)) + sealed)
        self._counter += 1

    def close(self) -> None:
        if not self.closed:
            self._emit(bytes(self._buf), last=True)
            self._buf.clear()
            self._out.flush()
        super().close()


class DecryptingReader(io.RawIOBase):
    """The inverse stream; a tampered, reordered or truncated file raises CorruptFile naming ``label``."""

    def __init__(self, src: BinaryIO, key: bytes, label: str) -> None:
        super().__init__()
        self._src = src
        self._label = label
        self._aead = _aesgcm()(key)
        head = src.read(len(MAGIC) + _PREFIX)
        if len(head) != len(MAGIC) + _PREFIX or not head.startswith(MAGIC):
            raise self._corrupt("not an encrypted dmig backup file")
        self._prefix = head[len(MAGIC) :]
        self._counter = 0
        self._pending = b""
        self._done = False

    def _corrupt(self, why: str) -> CorruptFile:
        return CorruptFile(f"{self._label}: {why}", table=self._label)

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> None:
        size_raw = self._src.read(4)
        if len(size_raw) < 4:
            raise self._corrupt("encrypted file is truncated (no final chunk)")
        (size,) = struct.unpack(">I", size_raw)
        sealed = self._src.read(size)
        if len(sealed) != size or size < _TAG:
            raise self._corrupt("encrypted file is truncated")
        from cryptography.exceptions import InvalidTag

        for last in (False, True):
            try:
                self._pending = self._aead.decrypt(_nonce(self._prefix, self._counter, last), sealed, MAGIC)
            except InvalidTag:
                continue
            self._counter += 1
            if last:
                self._done = True
                if self._src.read(1):
                    raise self._corrupt("data after the final encrypted chunk")
            return
        raise self._corrupt("decryption failed: wrong key, or the file was modified")

    def readinto(self, buffer: Any) -> int:
        while not self._pending and not self._done:
            self._next_chunk()
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def decrypt_file(src: str | os.PathLike[str], dst: str | os.PathLike[str], key: bytes, label: str) -> None:
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        reader = DecryptingReader(fin, key, label)
        while block := reader.read(CHUNK):
            fout.write(block)


def encrypt_file(src: str | os.PathLike[str], dst: str | os.PathLike[str], key: bytes) -> None:
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        writer = EncryptingWriter(fout, key)
        while block := fin.read(CHUNK):
            writer.write(block)
        writer.close()
