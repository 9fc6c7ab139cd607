"""App tokens (ivr.webrtc.tokens): signed, expiring, for this gateway and issuer; every refusal names its reason."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ivr.webrtc.tokens import TokenRefused, TokenVerifier, issue_token, valid_screen, verifier_key

KEY = "k" * 43
ISS, AUD = "bank-app", "ivr-app-calls"


def verifier(**kwargs: object) -> TokenVerifier:
    return TokenVerifier("HS256", KEY, ISS, AUD, **kwargs)  # type: ignore[arg-type]


def test_a_valid_token_names_the_customer_and_screen() -> None:
    now = int(time.time())
    token = issue_token(KEY, "C1001", issuer=ISS, audience=AUD, screen="card", token_id="t-1", now=now)
    claims = verifier().verify(token)
    assert (claims.customer_id, claims.screen, claims.token_id) == ("C1001", "card", "t-1")
    assert (claims.issued_at, claims.expires_at) == (now, now + 300)
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}


# Each token is made when its test runs: made at collection, the short-lived ones expired before a long suite
# reached them (and were refused as expired instead of for their own fault).
@pytest.mark.parametrize(("make_token", "reason"), [
    (lambda: issue_token(KEY, "C1001", issuer=ISS, audience=AUD, now=time.time() - 400), "the app token has expired"),
    (lambda: issue_token("x" * 43, "C1001", issuer=ISS, audience=AUD), "the app token's signature does not verify"),
    (lambda: issue_token(KEY, "C1001", issuer="someone", audience=AUD),
     "the app token is not from the configured issuer"),
    (lambda: issue_token(KEY, "C1001", issuer=ISS, audience="other"), "the app token is not for this gateway"),
    (lambda: issue_token(KEY, "C1001", issuer=ISS, audience=AUD, ttl_s=3600), "valid for 3600 s, more than the 900 s"),
    (lambda: issue_token(KEY, "C1001", issuer=ISS, audience=AUD, screen="Card!"),
     "the app token's screen 'Card!' is not"),
    (lambda: issue_token(KEY, "C 1001", issuer=ISS, audience=AUD), "customer id (sub) is not an id"),
    (lambda: jwt.encode({"sub": "C1001", "iss": ISS, "aud": AUD, "exp": int(time.time()) + 60}, KEY, "HS256"),
     "lacks the 'iat' claim"),
    (lambda: jwt.encode({"sub": "C1001", "iss": ISS, "aud": AUD, "iat": int(time.time()), "exp": int(time.time()) + 60},
                None, "none"), "signed with 'none'"),
    (lambda: "not-a-jwt", "the app token is not a JWT"),
    (lambda: "", "no app token"),
])
def test_a_bad_token_is_refused_saying_why(make_token: Callable[[], str], reason: str) -> None:
    with pytest.raises(TokenRefused) as refused:
        verifier().verify(make_token())
    assert reason in str(refused.value)


def test_a_token_from_the_future_is_refused_beyond_the_clock_skew() -> None:
    token = issue_token(KEY, "C1001", issuer=ISS, audience=AUD, now=time.time() + 120)
    with pytest.raises(TokenRefused, match="not valid yet"):
        verifier().verify(token)
    verifier().verify(issue_token(KEY, "C1001", issuer=ISS, audience=AUD, now=time.time() + 5))  # within leeway


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_production_verifies_the_issuers_signature_with_its_public_key_only(algorithm: str, tmp_path: Path) -> None:
    private = rsa.generate_private_key(65537, 2048) if algorithm == "RS256" else ec.generate_private_key(ec.SECP256R1())
    private_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "issuer.pub").write_bytes(public_pem)
    (tmp_path / "issuer.key").write_bytes(private_pem)
    key = verifier_key(algorithm, "", tmp_path / "issuer.pub")
    check = TokenVerifier(algorithm, key, ISS, AUD)
    token = issue_token(private_pem, "C1002", issuer=ISS, audience=AUD, algorithm=algorithm)
    assert check.verify(token).customer_id == "C1002"
    # The classic confusion: an HS256 token keyed with the public key text must not pass.
    forged = jwt.api_jws.PyJWS().encode(
        jwt.api_jwt.PyJWT()._encode_payload({"sub": "C1002", "iss": ISS, "aud": AUD, "iat": int(time.time()),
                                             "exp": int(time.time()) + 60}), b"x" * 32, "HS256")
    with pytest.raises(TokenRefused, match=f"signed with 'HS256', the gateway accepts {algorithm} only"):
        check.verify(forged)
    with pytest.raises(ValueError, match="holds a private key"):
        verifier_key(algorithm, "", tmp_path / "issuer.key")


def test_the_verifier_key_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="IVR_APP_TOKEN_SECRET is empty"):
        verifier_key("HS256", "", None)
    with pytest.raises(ValueError, match="IVR_APP_TOKEN_PUBLIC_KEY_PATH is not set"):
        verifier_key("RS256", "", None)
    with pytest.raises(ValueError, match="cannot be read"):
        verifier_key("ES256", "", tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="is not one of"):
        TokenVerifier("HS512", KEY, ISS, AUD)


def test_screen_names() -> None:
    assert valid_screen("card") == "card" and valid_screen("") is None and valid_screen(None) is None
    with pytest.raises(ValueError, match="not a screen name"):
        valid_screen("../../etc")
