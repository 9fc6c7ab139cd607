"""The WSS server's certificate (ivr/ops/certs.py): a site's own is checked and copied where Asterisk reads it; without
one, a self-signed one for the WSS host is made once and kept, and made again for another host."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ivr.ops.certs import CertificateError, ensure_wss_certificate


def site_pair(folder: Path, name: str = "pbx.bank.example") -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def names(cert: Path) -> set[str]:
    san = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    return {str(v) for v in san.get_values_for_type(x509.DNSName) + san.get_values_for_type(x509.IPAddress)}


def test_a_sites_certificate_is_copied_where_asterisk_reads_it(tmp_path: Path) -> None:
    cert, key = site_pair(tmp_path)
    files = ensure_wss_certificate(tmp_path / "run", "pbx.bank.example", cert, key)
    assert not files.self_signed
    assert files.cert.read_bytes() == cert.read_bytes() and files.key.read_bytes() == key.read_bytes()
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600


def test_a_wrong_or_half_configured_pair_is_named(tmp_path: Path) -> None:
    cert, _ = site_pair(tmp_path, "a.example")
    _, other_key = site_pair(tmp_path, "b.example")
    with pytest.raises(CertificateError, match="is not the key of"):
        ensure_wss_certificate(tmp_path / "run", "a.example", cert, other_key)
    with pytest.raises(CertificateError, match="go together"):
        ensure_wss_certificate(tmp_path / "run", "a.example", cert, None)
    (tmp_path / "junk.crt").write_text("not a certificate")
    with pytest.raises(CertificateError, match=r"junk\.crt: not a readable PEM certificate"):
        ensure_wss_certificate(tmp_path / "run", "a.example", tmp_path / "junk.crt", other_key)


def test_self_signed_for_the_host_kept_and_made_again_for_another_host(tmp_path: Path) -> None:
    files = ensure_wss_certificate(tmp_path, "127.0.0.1")
    assert files.self_signed and names(files.cert) == {"127.0.0.1", "localhost"}
    first = files.cert.read_bytes()
    assert ensure_wss_certificate(tmp_path, "127.0.0.1").cert.read_bytes() == first
    again = ensure_wss_certificate(tmp_path, "ivr.lan")
    assert again.cert.read_bytes() != first and names(again.cert) == {"ivr.lan", "127.0.0.1", "localhost"}
