"""`ivr setup` output: private secrets kept across runs, a least-privilege AMI user, one endpoint a phone."""

from __future__ import annotations

import os
import re
import stat
import wave
from pathlib import Path

import pytest

from ivr.config import PROJECT_DIR, Settings
from ivr.ops.provision import provision, sip_password_key
from ivr.telephony import pagephone

EXTENSIONS = ["1001", "1002", "1003", "1004", "2001", "2002", "9001"]
PAGE_PHONES = EXTENSIONS[:-1]  # every agent and field extension has a WebRTC twin; the simulator's phone none


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("IVR_"):
            monkeypatch.delenv(key)


def make_settings(tmp_path: Path) -> Settings:
    return Settings(run_dir=tmp_path, recordings_dir=tmp_path / "rec")


def read_secrets(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_file_private_and_complete(tmp_path: Path) -> None:
    written = provision(make_settings(tmp_path))
    secrets_env = tmp_path / "secrets.env"
    assert written[0] == secrets_env
    assert mode(secrets_env) == 0o600
    values = read_secrets(secrets_env)
    assert set(values) == {"IVR_AMI_SECRET", "IVR_APP_TOKEN_SECRET", *(sip_password_key(e) for e in EXTENSIONS),
                           *(pagephone.password_key(e) for e in PAGE_PHONES)}
    assert all(len(v) >= 20 for v in values.values())
    assert len(values["IVR_APP_TOKEN_SECRET"]) >= 43  # 256 bits for the app tokens' HMAC key (RFC 7518)
    assert len(set(values.values())) == len(values)  # every secret distinct
    assert not list(tmp_path.rglob("*.tmp"))


def test_manager_users_least_privilege(tmp_path: Path) -> None:
    provision(make_settings(tmp_path))
    conf = tmp_path / "asterisk" / "generated" / "manager_users.conf"
    assert mode(conf) == 0o600
    secret = read_secrets(tmp_path / "secrets.env")["IVR_AMI_SECRET"]
    lines = conf.read_text().splitlines()
    assert lines[0] == "[ivr]"
    assert f"secret = {secret}" in lines
    assert "deny = 0.0.0.0/0.0.0.0" in lines
    assert "permit = 127.0.0.1/255.255.255.255" in lines
    assert lines.index("deny = 0.0.0.0/0.0.0.0") < lines.index("permit = 127.0.0.1/255.255.255.255")
    rights = {}
    for line in lines:
        key, _sep, value = line.partition(" = ")
        if key in ("read", "write"):
            rights[key] = {r.strip() for r in value.split(",")}
    assert set(rights) == {"read", "write"}
    for granted in rights.values():
        assert not granted & {"system", "command", "config", "all"}
    assert "originate" in rights["write"]


def test_pjsip_one_endpoint_per_extension(tmp_path: Path) -> None:
    provision(make_settings(tmp_path))
    conf = tmp_path / "asterisk" / "generated" / "pjsip_users.conf"
    assert mode(conf) == 0o600
    text = conf.read_text()
    endpoints = re.findall(r"^\[(\d+)\]\((desk-agent|field-mobile)\)$", text, re.MULTILINE)
    assert [e for e, _ in endpoints] == EXTENSIONS
    assert dict(endpoints)["2001"] == "field-mobile"
    assert dict(endpoints)["1001"] == "desk-agent"
    values = read_secrets(tmp_path / "secrets.env")
    for ext in EXTENSIONS:
        password = values[sip_password_key(ext)]
        assert f"[{ext}-auth](phone-auth)\nusername = {ext}\npassword = {password}\n" in text
        assert f"[{ext}](phone-aor)\n" in text
    assert "context = sim-phone" in text.split("[9001](desk-agent)")[1].split("\n\n")[0]
    assert "carrier" not in text  # no trunk unless IVR_TRUNK_ADDRESS is set


def test_every_agent_extension_has_a_webrtc_twin_with_its_own_password(tmp_path: Path) -> None:
    provision(make_settings(tmp_path))
    text = (tmp_path / "asterisk" / "generated" / "pjsip_users.conf").read_text()
    twins = re.findall(r"^\[(webrtc-\d+)\]\(webrtc-phone\)$", text, re.MULTILINE)
    assert twins == [f"webrtc-{e}" for e in PAGE_PHONES]
    values = read_secrets(tmp_path / "secrets.env")
    for ext in PAGE_PHONES:
        password = values[pagephone.password_key(ext)]
        assert password != values[sip_password_key(ext)]
        block = text.split(f"[webrtc-{ext}](webrtc-phone)\n")[1].split("\n\n")[0]
        assert f"aors = webrtc-{ext}" in block and f"<{ext}>" in block  # the extension's caller id
        assert f"[webrtc-{ext}-auth](phone-auth)\nusername = webrtc-{ext}\npassword = {password}\n" in text
        assert f"[webrtc-{ext}](webrtc-aor)\n" in text


def test_wss_server_tls_only_with_a_self_signed_certificate_kept_across_runs(tmp_path: Path) -> None:
    from cryptography import x509

    settings = make_settings(tmp_path)
    written = provision(settings)
    conf = (tmp_path / "asterisk" / "generated" / "http_tls.conf").read_text().splitlines()
    cert, key = tmp_path / "tls" / "wss.crt", tmp_path / "tls" / "wss.key"
    assert {cert, key} <= set(written)
    assert conf == ["tlsenable = yes", "tlsbindaddr = 127.0.0.1:8089", f"tlscertfile = {cert}",
                    f"tlsprivatekey = {key}"]  # run_dir outside the project: the path as it is
    assert mode(key) == 0o600
    names = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    first = cert.read_bytes()
    provision(settings)
    assert cert.read_bytes() == first  # not remade: browsers that trusted it keep trusting it


def test_second_run_keeps_secrets(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    provision(settings)
    first = (tmp_path / "secrets.env").read_text()
    first_conf = (tmp_path / "asterisk" / "generated" / "manager_users.conf").read_text()
    provision(settings)
    assert (tmp_path / "secrets.env").read_text() == first
    assert (tmp_path / "asterisk" / "generated" / "manager_users.conf").read_text() == first_conf
    assert mode(tmp_path / "secrets.env") == 0o600


def test_environment_secret_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(tmp_path)
    provision(settings)
    old = read_secrets(tmp_path / "secrets.env")
    monkeypatch.setenv("IVR_AMI_SECRET", "from-the-environment-123")
    provision(settings)
    new = read_secrets(tmp_path / "secrets.env")
    assert new["IVR_AMI_SECRET"] == "from-the-environment-123"
    assert {k: v for k, v in new.items() if k != "IVR_AMI_SECRET"} == {
        k: v for k, v in old.items() if k != "IVR_AMI_SECRET"
    }
    conf = (tmp_path / "asterisk" / "generated" / "manager_users.conf").read_text()
    assert "secret = from-the-environment-123\n" in conf


def test_trunk_address_adds_carrier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_TRUNK_ADDRESS", "192.0.2.10")
    provision(make_settings(tmp_path))
    text = (tmp_path / "asterisk" / "generated" / "pjsip_users.conf").read_text()
    assert "contact = sip:192.0.2.10\n" in text
    assert "match = 192.0.2.10\n" in text


def test_support_files(tmp_path: Path) -> None:
    written = provision(make_settings(tmp_path))
    silence = tmp_path / "sim" / "silence200ms.wav"
    assert silence in written
    with wave.open(str(silence)) as wav:
        shape = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes())
        assert shape == (1, 2, 8000, 1600)
        assert wav.readframes(1600) == bytes(3200)
    assert (tmp_path / "moh" / "chime.wav").exists()
    assert (tmp_path / "rec" / "calls").is_dir()
    for sub in ("lib", "spool", "run", "log", "cache"):
        assert (tmp_path / "asterisk" / sub).is_dir()


_LITERAL_SECRET = re.compile(r"^\s*(secret|password)\s*=>?\s*(\S+)", re.IGNORECASE)


def test_committed_asterisk_conf_has_no_literal_secrets() -> None:
    confs = sorted((PROJECT_DIR / "asterisk_conf").glob("*.conf"))
    assert len(confs) >= 5
    offenders = []
    for conf in confs:
        for number, line in enumerate(conf.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            code = line.split(";", 1)[0]
            if _LITERAL_SECRET.match(code):
                offenders.append(f"{conf.name}:{number}: {line.strip()}")
    assert offenders == []


def test_secret_scanner_catches_literals() -> None:
    assert _LITERAL_SECRET.match("secret = hunter2")
    assert _LITERAL_SECRET.match("password=>hunter2")
    assert not _LITERAL_SECRET.match("; secret = hunter2".split(";", 1)[0])
