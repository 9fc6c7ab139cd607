"""NAT traversal for app calls: STUN/TURN servers for aiortc, and which interfaces ICE may offer.

- STUN and TURN come from the settings the pages' phones share (``IVR_STUN_URLS``, ``IVR_TURN_URLS``,
  ``IVR_TURN_USERNAME``, ``IVR_TURN_PASSWORD``; coturn in docker-compose, off by default). aiortc uses the first
  STUN and the first TURN server of the list. The app learns them from the ``Link: <...>; rel="ice-server"``
  headers of the 201 answer, as WHIP (RFC 9725) does.
- Host candidates: aioice offers every address of every interface except 127.0.0.1 and has no option to narrow
  that (aiortc/aioice#2; the interface filter of PR #57 was not merged). ``restrict_host_addresses`` replaces its
  address lookup, process-wide, with one that keeps only the configured addresses or interface names
  (``IVR_WEBRTC_ICE_INTERFACES``; loopback by default, like AMI and AudioSocket): a gateway behind a private
  interface and a public one then never leaks the private topology in its answers, and tests on one machine
  never send a packet past loopback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import aioice.ice
import ifaddr
from aiortc import RTCIceServer

log = logging.getLogger(__name__)

_AIOICE_HOST_ADDRESSES = aioice.ice.get_host_addresses
"""aioice's own choice (every interface but 127.0.0.1), kept to restore it."""


@dataclass(frozen=True, slots=True)
class HostAddress:
    """One address of one interface of this machine."""

    interface: str
    """The interface's name (``lo``, ``eth0``)."""
    address: str
    """The address, without a scope."""
    ipv6: bool
    """An IPv6 address."""
    link_local: bool = False
    """An IPv6 address with a scope (fe80::/10): never a useful candidate."""


def host_addresses() -> list[HostAddress]:
    """This machine's addresses (ifaddr, as aioice reads them)."""
    found: list[HostAddress] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                found.append(HostAddress(adapter.nice_name, ip.ip, False))
            else:
                found.append(HostAddress(adapter.nice_name, ip.ip[0], True, link_local=bool(ip.ip[2])))
    return found


def select_addresses(addresses: Iterable[HostAddress], allowed: Sequence[str], use_ipv4: bool = True,
                     use_ipv6: bool = True) -> list[str]:
    """The addresses ICE may offer: those named in ``allowed`` (by address or interface name), in order, each once."""
    wanted = {a.strip() for a in allowed if a.strip()}
    chosen: list[str] = []
    for host in addresses:
        if host.link_local or (host.ipv6 and not use_ipv6) or (not host.ipv6 and not use_ipv4):
            continue
        if (host.address in wanted or host.interface in wanted) and host.address not in chosen:
            chosen.append(host.address)
    return chosen


def restrict_host_addresses(allowed: Sequence[str]) -> list[str]:
    """Let ICE offer host candidates only on ``allowed`` (addresses or interface names), process-wide.

    An empty list restores aioice's own choice. Returns the addresses that match now; an entry that matches
    nothing is logged (a typo would otherwise leave app calls without a single candidate)."""
    if not allowed:
        aioice.ice.get_host_addresses = _AIOICE_HOST_ADDRESSES
        return _AIOICE_HOST_ADDRESSES(use_ipv4=True, use_ipv6=True)

    def restricted(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return select_addresses(host_addresses(), allowed, use_ipv4, use_ipv6)

    aioice.ice.get_host_addresses = restricted
    now = host_addresses()
    for entry in allowed:
        if not select_addresses(now, [entry]):
            log.error("ICE interface %r matches no address of this machine: app calls get no candidate on it", entry)
    return select_addresses(now, allowed)


def ice_servers(stun_urls: Sequence[str], turn_urls: Sequence[str], turn_username: str = "",
                turn_password: str = "") -> list[RTCIceServer]:
    """aiortc's ICE servers from the settings (none on one machine: host candidates are enough)."""
    servers: list[RTCIceServer] = []
    if stun_urls:
        servers.append(RTCIceServer(urls=list(stun_urls)))
    if turn_urls:
        servers.append(RTCIceServer(urls=list(turn_urls), username=turn_username or None,
                                    credential=turn_password or None))
    return servers


def link_headers(servers: Sequence[RTCIceServer]) -> list[str]:
    """The servers as WHIP's ``Link`` header values (RFC 9725 section 4.6), for the app's own ICE agent."""
    links: list[str] = []
    for server in servers:
        urls = [server.urls] if isinstance(server.urls, str) else list(server.urls)
        for url in urls:
            link = f'<{url}>; rel="ice-server"'
            if server.username:
                link += f'; username="{server.username}"; credential="{server.credential or ""}"'
                link += '; credential-type="password"'
            links.append(link)
    return links
