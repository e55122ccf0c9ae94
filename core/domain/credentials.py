"""Passwords and tokens, with the standard library only.

scrypt (hashlib) is memory-hard and needs no extra dependency; tokens are random and only their
SHA-256 is stored, so a database dump does not let anyone act as an agent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    salt_b64, digest_b64 = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"scrypt${_N}${_R}${_P}${salt_b64}${digest_b64}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, digest = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        candidate = hashlib.scrypt(
            password.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(digest)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(candidate, digest)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def generate_secret(length: int = 24) -> str:
    """A secret safe to put in Asterisk config files (letters and digits only)."""
    alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


#: Digest realm of agents' SIP endpoints (pjsip.conf's auths and the desk phone's settings).
SIP_REALM = "helpline"


def sip_ha1(username: str, realm: str, password: str) -> str:
    """SIP digest HA1 = MD5(user:realm:password): what pjsip.conf stores instead of a seat's
    password, and what the desk phone is given instead of it (JsSIP's ``ha1``)."""
    return hashlib.md5(f"{username}:{realm}:{password}".encode(), usedforsecurity=False).hexdigest()
