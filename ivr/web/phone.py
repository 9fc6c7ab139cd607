"""The softphone inside /agent and /field: ``GET /api/phone/config`` hands a signed-in agent their page phone.

The page registers to Asterisk itself (JsSIP over WSS, ``static/lib/phone.js``); all it needs from here is where
and as whom: the WSS URL, the SIP address and password of the agent's own WebRTC endpoint
(``ivr.telephony.pagephone``), and the ICE servers. Credentials are given only to a signed-in agent or field
manager, only for the device the directory names for them, and never cached (``Cache-Control: no-store`` on
every ``/api/`` response). An agent whose device is a SIP phone gets ``enabled: false`` and where their calls
ring: the page then works as before, with the phone next to it.
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field

from ivr.config import Settings, read_env_file
from ivr.routing.agents import AgentDirectory
from ivr.telephony import pagephone
from ivr.web.auth import User, UserRole, require

CallTaker = Annotated[User, Depends(require(UserRole.AGENT, UserRole.FIELD))]

ICE_GATHERING_CAP_MS = 1500
"""The page stops waiting for ICE candidates this long after the first one: browser SIP stacks otherwise wait for
the end of gathering (seconds with an unreachable STUN server, JsSIP #432/#804) before sending the SDP."""


class IceServer(BaseModel):
    """One entry of RTCPeerConnection's ``iceServers``."""

    urls: list[str]
    """stun: or turn: URLs."""
    username: str | None = None
    """TURN only."""
    credential: str | None = None
    """TURN only."""


class PhoneConfig(BaseModel):
    """What the page needs to register its phone, or why it has none."""

    enabled: bool
    """True: the agent's device is a page phone, register it; False: calls ring ``device`` (a SIP phone)."""
    device: str
    """The directory's device for this agent (the ACD dials it)."""
    reason: str = ""
    """Why there is no page phone (shown on the page), when ``enabled`` is false."""
    wss_url: str | None = None
    """Asterisk's SIP-over-secure-WebSocket endpoint."""
    sip_uri: str | None = None
    """The page phone's address of record, ``sip:webrtc-1001@<domain>``."""
    authorization_user: str | None = None
    """The digest user name (the endpoint's name)."""
    password: str | None = None
    """The digest password (generated at setup, per extension)."""
    display_name: str | None = None
    """Shown to whoever the page calls."""
    ice_servers: list[IceServer] = Field(default_factory=list)
    """STUN/TURN servers (none on one machine)."""
    ice_gathering_cap_ms: int = ICE_GATHERING_CAP_MS
    """How long the page waits for more ICE candidates after the first."""


def wss_url(settings: Settings) -> str:
    """The URL the pages connect to: ``IVR_WEBRTC_WSS_URL`` or wss://<wss host>:<port>/ws."""
    return settings.webrtc_wss_url or f"wss://{settings.webrtc_wss_host}:{settings.webrtc_wss_port}/ws"


def sip_domain(settings: Settings) -> str:
    """The domain of the pages' SIP addresses: ``IVR_WEBRTC_SIP_DOMAIN`` or the WSS URL's host."""
    return settings.webrtc_sip_domain or urlsplit(wss_url(settings)).hostname or settings.webrtc_wss_host


def ice_servers(settings: Settings) -> list[IceServer]:
    servers = [IceServer(urls=list(settings.stun_urls))] if settings.stun_urls else []
    if settings.turn_urls:
        servers.append(IceServer(urls=list(settings.turn_urls), username=settings.turn_username or None,
                                 credential=settings.turn_password.get_secret_value() or None))
    return servers


def phone_password(settings: Settings, extension: str) -> str | None:
    """The page phone's SIP password: the environment's, else run/secrets.env's (as ``ivr setup`` wrote it)."""
    key = pagephone.password_key(extension)
    return os.environ.get(key) or read_env_file(settings.run_dir / "secrets.env").get(key)


def phone_router(settings: Settings, redis: aioredis.Redis) -> APIRouter:
    router = APIRouter(prefix="/api/phone", tags=["phone"])
    directory = AgentDirectory(redis)

    @router.get("/config", response_model=PhoneConfig, response_model_exclude_none=True)
    async def phone_config(user: CallTaker) -> PhoneConfig:
        agent = await directory.get(user.agent_id or "")
        if agent is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"agent {user.agent_id} is not in the directory")
        twin = pagephone.page_phone(agent.device)
        if twin is None:
            return PhoneConfig(enabled=False, device=agent.device,
                               reason=f"Your calls ring {agent.device}, a SIP phone: answer them there.")
        endpoint, extension = twin
        password = await asyncio.to_thread(phone_password, settings, extension)  # a small file read, off the loop
        if not password:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                f"no password for the page phone {endpoint}: run `ivr setup` on the server")
        return PhoneConfig(enabled=True, device=agent.device, wss_url=wss_url(settings),
                           sip_uri=f"sip:{endpoint}@{sip_domain(settings)}", authorization_user=endpoint,
                           password=password, display_name=agent.name, ice_servers=ice_servers(settings))

    return router

