"""NAT traversal settings (ivr.webrtc.ice): which interfaces ICE offers, and the STUN/TURN servers."""

from __future__ import annotations

import aioice.ice
import pytest
from aiortc import RTCPeerConnection

from ivr.webrtc.ice import HostAddress, ice_servers, link_headers, restrict_host_addresses, select_addresses

HOSTS = [HostAddress("lo", "127.0.0.1", False), HostAddress("lo", "::1", True),
         HostAddress("eth0", "192.0.2.2", False), HostAddress("eth0", "fe80::1", True, link_local=True),
         HostAddress("eth1", "198.51.100.7", False), HostAddress("eth1", "2001:db8::7", True)]


def test_only_the_named_addresses_or_interfaces_are_offered() -> None:
    assert select_addresses(HOSTS, ["127.0.0.1"]) == ["127.0.0.1"]
    assert select_addresses(HOSTS, ["eth1"]) == ["198.51.100.7", "2001:db8::7"]
    assert select_addresses(HOSTS, ["eth1"], use_ipv6=False) == ["198.51.100.7"]
    assert select_addresses(HOSTS, ["eth0"]) == ["192.0.2.2"]  # a link-local address is never a candidate
    assert select_addresses(HOSTS, ["wlan9", " "]) == []


@pytest.fixture
def restored():  # type: ignore[no-untyped-def]
    original = aioice.ice.get_host_addresses
    yield
    aioice.ice.get_host_addresses = original


async def test_an_offer_carries_loopback_candidates_only_when_restricted_to_it(restored: None) -> None:
    assert restrict_host_addresses(["127.0.0.1"]) == ["127.0.0.1"]
    pc = RTCPeerConnection()
    pc.addTransceiver("audio")
    await pc.setLocalDescription(await pc.createOffer())
    candidates = [line for line in pc.localDescription.sdp.splitlines() if line.startswith("a=candidate:")]
    await pc.close()
    assert candidates and all(line.split()[4] == "127.0.0.1" for line in candidates), candidates


def test_no_restriction_gives_aioice_its_own_choice_back(restored: None) -> None:
    restrict_host_addresses(["127.0.0.1"])
    restrict_host_addresses([])
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)


def test_stun_and_turn_servers_and_their_whip_links() -> None:
    servers = ice_servers(["stun:stun.example.net:3478"], ["turn:turn.example.net:3478?transport=udp"], "u", "p")
    assert [(s.urls, s.username, s.credential) for s in servers] == [
        (["stun:stun.example.net:3478"], None, None), (["turn:turn.example.net:3478?transport=udp"], "u", "p")]
    assert link_headers(servers) == [
        '<stun:stun.example.net:3478>; rel="ice-server"',
        '<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; username="u"; credential="p"; '
        'credential-type="password"']
    assert ice_servers([], []) == [] and link_headers([]) == []
