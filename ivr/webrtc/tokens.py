"""The app's customer tokens: who is calling, signed by the bank's app backend, short-lived. Pure (no I/O).

A token is a JWT (PyJWT). Required claims: ``sub`` (the customer id), ``exp``, ``iat``, ``aud`` (the gateway's
audience) and ``iss`` (the configured issuer). Optional: ``screen`` (where the customer was in the app: an intent
hint) and ``jti``. Development signs with HS256 and a per-machine secret (``ivr setup`` writes
``IVR_APP_TOKEN_SECRET``); production verifies the issuer's RS256 or ES256 signature with its public key only, so
the gateway cannot mint tokens. A token valid for longer than ``max_lifetime_s`` is refused even when signed: an app
asks for a fresh one per call.

Every refusal names what is wrong (expired, wrong audience, bad signature...), never the token itself.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

#: Algorithms accepted, each with the kind of key that verifies it. "none" and mixing HS with a public key never.
ALGORITHMS = ("HS256", "RS256", "ES256")
#: Customer ids and screen names: they become parts of Redis keys and dialplan variables.
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SCREEN = re.compile(r"^[a-z0-9_-]{1,32}$")
#: Clock skew tolerated between the app backend and us.
LEEWAY_S = 10


class TokenRefused(Exception):
    """The token does not let anyone call: ``str(exc)`` says why, for the 401 and the log."""


@dataclass(frozen=True, slots=True)
class AppClaims:
    """What a valid token says."""

    customer_id: str
    """The customer the bank's app signed in (``sub``)."""
    expires_at: float
    """When the token stops being valid (``exp``, epoch seconds)."""
    issued_at: float
    """When it was issued (``iat``)."""
    screen: str | None = None
    """The app screen the customer called from (``screen``), e.g. ``card``; None when not given."""
    token_id: str | None = None
    """The token's own id (``jti``), for the log; None when not given."""


def valid_screen(screen: str | None) -> str | None:
    """A screen name as the gateway accepts it (lowercase letters, digits, ``_``, ``-``; up to 32), or ValueError."""
    if screen is None or screen == "":
        return None
    if not _SCREEN.match(screen):
        raise ValueError(f"screen {screen[:40]!r} is not a screen name (a-z, 0-9, _ and -, up to 32 characters)")
    return screen


class TokenVerifier:
    """Checks app tokens against one key, algorithm, issuer and audience."""

    def __init__(self, algorithm: str, key: str | bytes, issuer: str, audience: str,
                 max_lifetime_s: float = 900) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"app token algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        if not key:
            raise ValueError(f"no key to verify {algorithm} app tokens with")
        self.algorithm, self.key, self.issuer, self.audience = algorithm, key, issuer, audience
        self.max_lifetime_s = max_lifetime_s

    def verify(self, token: str) -> AppClaims:
        """The claims of a valid token; TokenRefused naming the problem otherwise."""
        if not token or len(token) > 8192:
            raise TokenRefused("no app token" if not token else "the app token is over 8 KB")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise TokenRefused(f"the app token is not a JWT ({exc})") from None
        if header.get("alg") != self.algorithm:
            raise TokenRefused(f"the app token is signed with {header.get('alg')!r}, the gateway accepts "
                               f"{self.algorithm} only")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self.key, algorithms=[self.algorithm], audience=self.audience, issuer=self.issuer,
                leeway=LEEWAY_S, options={"require": ["exp", "iat", "sub", "aud", "iss"], "verify_iat": True},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRefused("the app token has expired") from None
        except jwt.InvalidAudienceError:
            raise TokenRefused(f"the app token is not for this gateway (audience is not {self.audience!r})") from None
        except jwt.InvalidIssuerError:
            raise TokenRefused(f"the app token is not from the configured issuer {self.issuer!r}") from None
        except jwt.InvalidSignatureError:
            raise TokenRefused("the app token's signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRefused(f"the app token lacks the {exc.claim!r} claim") from None
        except jwt.ImmatureSignatureError:
            raise TokenRefused("the app token is not valid yet (issued in the future)") from None
        except jwt.InvalidTokenError as exc:
            raise TokenRefused(f"the app token is invalid ({exc})") from None
        expires, issued = float(claims["exp"]), float(claims["iat"])
        if expires - issued > self.max_lifetime_s:
            raise TokenRefused(f"the app token is valid for {expires - issued:.0f} s, more than the "
                               f"{self.max_lifetime_s:g} s the gateway accepts: ask for a fresh one per call")
        customer = str(claims["sub"])
        if not _ID.match(customer):
            raise TokenRefused("the app token's customer id (sub) is not an id (A-Z, a-z, 0-9, _ . -, up to 64)")
        screen = claims.get("screen")
        try:
            screen = valid_screen(screen if isinstance(screen, str) else None)
        except ValueError as exc:
            raise TokenRefused(f"the app token's {exc}") from None
        jti = claims.get("jti")
        return AppClaims(customer_id=customer, expires_at=expires, issued_at=issued, screen=screen,
                         token_id=str(jti)[:64] if jti is not None else None)


def issue_token(key: str | bytes, customer_id: str, *, issuer: str, audience: str, ttl_s: float = 300,
                algorithm: str = "HS256", screen: str | None = None, now: float | None = None,
                token_id: str | None = None) -> str:
    """A token as the bank's app backend would sign it (the dev key, the tests, the bench and ``ivr`` tools)."""
    now = time.time() if now is None else now
    claims: dict[str, Any] = {"sub": customer_id, "iat": int(now), "exp": int(now + ttl_s), "iss": issuer,
                              "aud": audience}
    if screen is not None:
        claims["screen"] = screen
    if token_id is not None:
        claims["jti"] = token_id
    return jwt.encode(claims, key, algorithm=algorithm)


def verifier_key(algorithm: str, secret: str, public_key_path: Path | None) -> str:
    """The key that verifies tokens: the shared secret for HS256, the issuer's PEM public key for RS256/ES256.

    ValueError naming what is missing (the gateway then refuses app calls with a 503 saying so)."""
    if algorithm == "HS256":
        if not secret:
            raise ValueError("IVR_APP_TOKEN_SECRET is empty: run `ivr setup` (dev) or configure the issuer's key")
        return secret
    if public_key_path is None:
        raise ValueError(f"IVR_APP_TOKEN_PUBLIC_KEY_PATH is not set: {algorithm} tokens need the issuer's public key")
    try:
        pem = public_key_path.read_text(encoding="ascii")
    except OSError as exc:
        raise ValueError(f"the app token public key {public_key_path} cannot be read ({exc.strerror})") from None
    if "PRIVATE KEY" in pem:
        raise ValueError(f"{public_key_path} holds a private key: give the gateway the issuer's public key only")
    return pem
