"""`ivr setup`: the simulator's SIP trunk and the SIP ACL (who may send SIP at all)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from ivr.config import PROJECT_DIR, Settings
from ivr.ops.provision import SIM_TRUNK_ADDRESS, provision, render_sip_acl


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("IVR_"):
            monkeypatch.delenv(key)


def generated(tmp_path: Path, name: str) -> str:
    provision(Settings(run_dir=tmp_path, recordings_dir=tmp_path / "rec"))
    path = tmp_path / "asterisk" / "generated" / name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return path.read_text()


def test_simulator_trunk_is_identified_by_its_own_loopback_address(tmp_path: Path) -> None:
    text = generated(tmp_path, "pjsip_users.conf")
    assert "[sim-trunk](hotline-trunk)\n" in text
    assert f"[sim-trunk-identify]\ntype = identify\nendpoint = sim-trunk\nmatch = {SIM_TRUNK_ADDRESS}\n" in text
    # Not 127.0.0.1: identification by address comes first, and the phones there must keep their usernames.
    assert not re.search(r"^match = 127\.0\.0\.1$", text, re.MULTILINE)


def test_simulator_trunk_can_be_moved_or_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_SIM_TRUNK_ADDRESS", "127.0.0.20")
    assert "match = 127.0.0.20\n" in generated(tmp_path, "pjsip_users.conf")
    assert "permit = 127.0.0.20/255.255.255.255\n" in render_sip_acl()
    monkeypatch.setenv("IVR_SIM_TRUNK_ADDRESS", "")
    assert "sim-trunk" not in generated(tmp_path, "pjsip_users.conf")
    assert "127.0.0.20" not in render_sip_acl()


def test_sip_acl_denies_by_default_and_admits_known_sources(tmp_path: Path) -> None:
    lines = generated(tmp_path, "acl_sip.conf").splitlines()
    assert lines == ["[sip_sources]", "deny = 0.0.0.0/0.0.0.0", "deny = ::/0",
                     "permit = 127.0.0.1/255.255.255.255", f"permit = {SIM_TRUNK_ADDRESS}/255.255.255.255"]


def test_sip_acl_admits_the_carrier_and_the_sites_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVR_TRUNK_ADDRESS", "192.0.2.10")
    monkeypatch.setenv("IVR_SIP_PERMIT", "10.20.0.0/24, 198.51.100.7,2001:db8::/32,10.20.0.0/24")
    permits = [line for line in render_sip_acl().splitlines() if line.startswith("permit")]
    assert permits == ["permit = 127.0.0.1/255.255.255.255", f"permit = {SIM_TRUNK_ADDRESS}/255.255.255.255",
                       "permit = 192.0.2.10/255.255.255.255", "permit = 10.20.0.0/255.255.255.0",
                       "permit = 198.51.100.7/255.255.255.255", "permit = 2001:db8::/32"]


@pytest.mark.parametrize(("variable", "value"), [
    ("IVR_SIP_PERMIT", "pbx.example.com"), ("IVR_SIP_PERMIT", "10.0.0.0/8\npermit = 0.0.0.0/0"),
    ("IVR_TRUNK_ADDRESS", "sbc.carrier.example"),
])
def test_sip_acl_refuses_what_is_not_an_address(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=f"{variable}: .* is not an IP address or network"):
        render_sip_acl()


def test_asterisk_applies_the_acl_to_all_sip() -> None:
    pjsip = (PROJECT_DIR / "asterisk_conf" / "pjsip.conf").read_text()
    assert "[sip-sources]\ntype = acl\nacl = sip_sources\n" in pjsip
    acl = (PROJECT_DIR / "asterisk_conf" / "acl.conf").read_text()
    assert '#include "/srv/ivr/run/asterisk/generated/acl_sip.conf"' in acl
