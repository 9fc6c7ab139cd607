"""The `monitoring` profile of docker-compose.yml, its Prometheus configuration and the Grafana dashboard.

Docker is not on this machine, so the files are checked for what Compose, Prometheus and Grafana read from them:
the services sit in the profile (and the stack's own services do not), each mounted file exists, Prometheus
scrapes where the controller serves /metrics (and from where it may), and every series the dashboard plots is
one the controller exports.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import ivr.metrics  # noqa: F401  (registers the ivr_* series)
from ivr.config import Settings
from ivr.web.health import client_allowed, metrics_networks

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "docs" / "grafana" / "ivr-dashboard.json"


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (named volumes left out)."""
    out: dict[str, Path] = {}
    for entry in service.get("volumes", []):
        source, target, *_ = entry.split(":")
        if source.startswith("."):
            out[target] = ROOT / source
    return out


def test_prometheus_and_grafana_are_in_the_monitoring_profile_only() -> None:
    services = compose()["services"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["grafana"]["profiles"] == ["monitoring"]
    # `docker compose up` without the profile starts the stack as before.
    for name in ("redis", "asterisk", "controller"):
        assert "profiles" not in services[name], name
    for name in ("prometheus", "grafana"):
        assert services[name]["network_mode"] == "host"  # the controller's loopback /metrics is reachable
        assert re.fullmatch(r"[a-z/-]+:v?\d+\.\d+\.\d+", services[name]["image"]), f"{name}: pin an image version"
    volumes = compose()["volumes"]
    assert "prometheus-data" in volumes and "grafana-data" in volumes


def test_every_file_the_monitoring_services_mount_is_in_the_repository() -> None:
    services = compose()["services"]
    for name in ("prometheus", "grafana"):
        for target, source in mounts(services[name]).items():
            assert source.exists(), f"{name} mounts {source} at {target}: missing"
    prometheus = services["prometheus"]
    config = next(arg.split("=", 1)[1] for arg in prometheus["command"] if arg.startswith("--config.file="))
    assert mounts(prometheus)[config] == ROOT / "docker" / "prometheus.yml"
    grafana = mounts(services["grafana"])
    provider = yaml.safe_load((ROOT / "docker" / "grafana" / "dashboards.yml").read_text())
    dashboards_in = provider["providers"][0]["options"]["path"]
    assert grafana[dashboards_in] == DASHBOARD.parent
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_in}/{DASHBOARD.name}"


def test_prometheus_scrapes_the_controllers_metrics_from_an_allowed_address() -> None:
    config = yaml.safe_load((ROOT / "docker" / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "ivr")
    assert job["metrics_path"] == "/metrics"
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    settings = Settings()
    assert targets == [f"{settings.http_host}:{settings.http_port}"]
    # On the host network the scraper connects from loopback: inside the default IVR_METRICS_CLIENTS.
    host = targets[0].rsplit(":", 1)[0]
    assert ipaddress.ip_address(host).is_loopback
    assert client_allowed(host, metrics_networks(settings.metrics_clients))


def test_grafana_reads_the_prometheus_of_the_profile() -> None:
    datasource = yaml.safe_load((ROOT / "docker" / "grafana" / "datasources.yml").read_text())["datasources"][0]
    prometheus = compose()["services"]["prometheus"]
    listen = next(arg.split("=", 1)[1] for arg in prometheus["command"] if arg.startswith("--web.listen-address="))
    assert datasource["type"] == "prometheus" and datasource["url"] == f"http://{listen}"
    dashboard = json.loads(DASHBOARD.read_text())
    choices = dashboard["templating"]["list"][0]
    assert choices["type"] == "datasource" and choices["current"]["value"] == datasource["uid"]


def _exported() -> set[str]:
    names: set[str] = set()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    for family in REGISTRY.collect():  # a labelled series with no child yet has no samples: names by its type
        names.add(family.name)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_every_series_the_dashboard_plots_is_exported() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = _exported()
    plotted = set()
    for panel in _panels(dashboard):
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            plotted.update(re.findall(r"\b((?:ivr|process)_[a-z_]+)", target["expr"]))
    missing = sorted(plotted - exported)
    assert not missing, f"the dashboard plots series the controller does not export: {missing}"
    # ... and it shows what the issue asks for.
    for wanted in ("ivr_calls_in_ivr", "ivr_turns_total", "ivr_asr_latency_seconds_bucket", "ivr_acd_waiting_calls",
                   "ivr_acd_agents", "ivr_ami_reconnects_total", "ivr_audiosocket_sessions", "ivr_web_sockets",
                   "ivr_errors_total", "process_cpu_seconds_total"):
        assert wanted in plotted, wanted


def test_dashboard_panels_do_not_overlap() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    cells: dict[tuple[int, int], str] = {}
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        for x in range(box["x"], box["x"] + box["w"]):
            for y in range(box["y"], box["y"] + box["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


@pytest.mark.parametrize("name", ["prometheus", "grafana"])
def test_monitoring_listens_on_loopback_only(name: str) -> None:
    service = compose()["services"][name]
    if name == "prometheus":
        listen = next(a for a in service["command"] if a.startswith("--web.listen-address="))
        assert listen.split("=", 1)[1].startswith("127.0.0.1:")
    else:
        assert service["environment"]["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"
