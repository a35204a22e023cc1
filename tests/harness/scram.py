"""SCRAM-SHA-256 (RFC 5802 / 7677) and md5 password math, for test setup and the raw wire client.

- scram_verifier(): the secret PostgreSQL stores in pg_authid, with any iteration count (PG15
  has no scram_iterations setting; ALTER ROLE ... PASSWORD '<verifier>' stores it as is).
- ScramClient: the client side of a SCRAM exchange (no channel binding), for wire.py.
Passwords are assumed to be ASCII (SASLprep is then the identity).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def _salted(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)


def scram_verifier(password: str, iterations: int = 4096, salt: bytes | None = None) -> str:
    """'SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>' as stored by PostgreSQL."""
    if iterations < 1:
        raise ValueError("iterations must be >= 1")
    salt = salt if salt is not None else os.urandom(16)
    salted = _salted(password, salt, iterations)
    stored_key = hashlib.sha256(_hmac(salted, b"Client Key")).digest()
    server_key = _hmac(salted, b"Server Key")
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def parse_verifier(verifier: str) -> tuple[int, bytes, bytes, bytes]:
    """(iterations, salt, stored_key, server_key) from a stored SCRAM secret."""
    mech, rest = verifier.split("$", 1)
    if mech != "SCRAM-SHA-256":
        raise ValueError(f"not a SCRAM-SHA-256 secret: {verifier[:20]}...")
    iter_salt, keys = rest.split("$", 1)
    it, salt = iter_salt.split(":", 1)
    stored, server = keys.split(":", 1)
    d = base64.b64decode
    return int(it), d(salt), d(stored), d(server)


def md5_password_hash(user: str, password: str) -> str:
    """'md5' + md5(password + user): what PostgreSQL stores with password_encryption=md5."""
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()


def md5_response(user: str, password: str, salt: bytes) -> str:
    """The PasswordMessage payload for AuthenticationMD5Password with `salt`."""
    inner = hashlib.md5((password + user).encode()).hexdigest()
    return "md5" + hashlib.md5(inner.encode() + salt).hexdigest()


class ScramError(Exception):
    pass


class ScramClient:
    """Client side of SCRAM-SHA-256 without channel binding ('n,,')."""

    def __init__(self, password: str, nonce: str | None = None, user: str = "") -> None:
        # PostgreSQL takes the user from the startup packet and ignores n=; RFC vectors set it.
        self.password = password
        self.nonce = nonce or base64.b64encode(os.urandom(18)).decode()
        self.client_first_bare = f"n={user},r={self.nonce}"
        self._auth_message = b""
        self._server_key = b""

    def first_message(self) -> bytes:
        return ("n,," + self.client_first_bare).encode()

    def final_message(self, server_first: bytes) -> bytes:
        text = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in text.split(","))
        nonce, salt, iterations = attrs.get("r", ""), attrs.get("s", ""), attrs.get("i", "")
        if not nonce.startswith(self.nonce) or not salt or not iterations:
            raise ScramError(f"bad server-first-message: {text!r}")
        salted = _salted(self.password, base64.b64decode(salt), int(iterations))
        client_key = _hmac(salted, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        self._auth_message = f"{self.client_first_bare},{text},{without_proof}".encode()
        signature = _hmac(stored_key, self._auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self._server_key = _hmac(salted, b"Server Key")
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify_server_final(self, server_final: bytes) -> None:
        text = server_final.decode()
        if text.startswith("e="):
            raise ScramError(f"server refused: {text[2:]}")
        if not text.startswith("v="):
            raise ScramError(f"bad server-final-message: {text!r}")
        expected = _hmac(self._server_key, self._auth_message)
        if not hmac.compare_digest(base64.b64decode(text[2:]), expected):
            raise ScramError("server signature does not verify")
