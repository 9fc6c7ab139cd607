"""docker-compose.yml keeps a TURN server for app callers (coturn from Debian), off by default (no Docker here:
the file is parsed and checked)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_coturn_is_a_debian_service_behind_a_profile_off_by_default() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    coturn = services["coturn"]
    assert coturn["profiles"] == ["turn"]  # `docker compose up` alone never starts it
    assert coturn["network_mode"] == "host"
    dockerfile = (ROOT / coturn["build"]["dockerfile"]).read_text(encoding="utf-8")
    assert dockerfile.startswith("#") and "FROM debian:" in dockerfile and "install -y --no-install-recommends coturn" \
        in dockerfile
    assert "--lt-cred-mech" in coturn["command"]
    assert any(part.startswith("--user=${IVR_TURN_USERNAME") for part in coturn["command"])
    config = coturn["volumes"][0].split(":")[0]
    text = (ROOT / config).read_text(encoding="utf-8")
    assert "denied-peer-ip=127.0.0.0-127.255.255.255" in text and "listening-port=3478" in text
    for name, service in services.items():  # nothing that starts by default waits for it
        if not service.get("profiles"):
            assert "coturn" not in (service.get("depends_on") or []), name
