"""The WSS server's certificate: a site's own, or a self-signed one made at setup for loopback and dev.

Asterisk's TLS HTTP server (asterisk_conf/http.conf) carries the pages' SIP over secure WebSocket. It runs in
its Debian root and sees only the project (mounted at /srv/ivr), so the certificate and key it reads always live
in ``run/tls/``: a site's real ones (``IVR_WEBRTC_TLS_CERT``/``IVR_WEBRTC_TLS_KEY``) are copied there at setup,
otherwise a self-signed one is made there, for the WSS host, ``localhost`` and ``127.0.0.1``. A browser must trust
it (open https://127.0.0.1:8089/ once and accept it, or install it); the browser tests start Chromium with
``--ignore-certificate-errors``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SELF_SIGNED_DAYS = 825
"""How long a self-signed certificate is valid (browsers refuse longer-lived server certificates)."""
RENEW_BEFORE_DAYS = 30
"""A self-signed certificate this close to its end is made again at setup."""


class CertificateError(ValueError):
    """A configured certificate or key cannot be used; the message names the file and why."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where the WSS server's certificate and key are, in ``run/tls/``."""

    cert: Path
    """The certificate chain (PEM), leaf first."""
    key: Path
    """The private key (PEM, mode 0600)."""
    self_signed: bool
    """True when setup made the certificate (no real one configured)."""


def tls_files(run_dir: Path) -> TlsFiles:
    """The paths Asterisk's http.conf points at (made or copied by :func:`ensure_wss_certificate`)."""
    return TlsFiles(run_dir / "tls" / "wss.crt", run_dir / "tls" / "wss.key", self_signed=True)


def ensure_wss_certificate(run_dir: Path, host: str, cert: Path | None = None, key: Path | None = None) -> TlsFiles:
    """Copy the site's certificate and key into ``run/tls/``, or make (or keep) a self-signed one for ``host``."""
    files = tls_files(run_dir)
    files.cert.parent.mkdir(parents=True, exist_ok=True)
    if cert or key:
        if not (cert and key):
            raise CertificateError("IVR_WEBRTC_TLS_CERT and IVR_WEBRTC_TLS_KEY go together: set both, or neither "
                                   "for a self-signed certificate")
        _check_pair(cert, key)
        shutil.copyfile(cert, files.cert)
        _copy_private(key, files.key)
        return TlsFiles(files.cert, files.key, self_signed=False)
    names = _subject_names(host)
    if not _still_good(files, names):
        _make_self_signed(files, names)
    return files


def _subject_names(host: str) -> list[str]:
    return list(dict.fromkeys([host, "127.0.0.1", "localhost"]))


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _still_good(files: TlsFiles, names: list[str]) -> bool:
    """The self-signed certificate made before: there, covering ``names``, not about to end."""
    if not (files.cert.exists() and files.key.exists()):
        return False
    try:
        certificate = x509.load_pem_x509_certificate(files.cert.read_bytes())
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    ends = certificate.not_valid_after_utc
    return set(san) >= set(_san(names)) and ends - dt.datetime.now(dt.UTC) > dt.timedelta(days=RENEW_BEFORE_DAYS)


def _make_self_signed(files: TlsFiles, names: list[str]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ivr dev (self-signed)")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _write_private(files.key, pem_key)
    files.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _check_pair(cert: Path, key: Path) -> None:
    try:
        certificate = x509.load_pem_x509_certificates(cert.read_bytes())[0]
    except (OSError, ValueError) as exc:
        raise CertificateError(f"IVR_WEBRTC_TLS_CERT {cert}: not a readable PEM certificate ({exc})") from None
    try:
        private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise CertificateError(f"IVR_WEBRTC_TLS_KEY {key}: not a readable, unencrypted PEM key ({exc})") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (private.public_key().public_bytes(serialization.Encoding.DER, public)
            != certificate.public_key().public_bytes(serialization.Encoding.DER, public)):
        raise CertificateError(f"IVR_WEBRTC_TLS_KEY {key} is not the key of IVR_WEBRTC_TLS_CERT {cert}")


def _copy_private(source: Path, target: Path) -> None:
    _write_private(target, source.read_bytes())


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
