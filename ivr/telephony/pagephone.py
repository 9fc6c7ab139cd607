"""The agents' page phones: the WebRTC twins of their SIP extensions, as Asterisk and the web app name them.

Every agent and field extension (``1001``) gets a twin PJSIP endpoint (``webrtc-1001``) that only browsers use:
SIP over secure WebSocket, DTLS-SRTP, ICE, Opus or G.711. A desk phone and a page cannot share one endpoint
(Asterisk offers DTLS and ICE to every contact of a WebRTC endpoint, which a plain SIP phone refuses), so the
twin is a separate account with its own password.

Which one rings is the directory's choice: an agent whose device is ``PJSIP/webrtc-1001`` takes calls in the
page (the ACD dials that device and follows its registration), one whose device is ``PJSIP/1001`` on a SIP
phone. ``ivr setup`` (``ivr.ops.provision``) renders the twins; ``GET /api/phone/config`` (``ivr.web.phone``)
hands a signed-in agent the credentials of their own twin, and nothing else.
"""

from __future__ import annotations

import re

PREFIX = "webrtc-"
"""A page phone's endpoint name is this plus the extension: ``webrtc-1001``."""

_PAGE_DEVICE = re.compile(r"^PJSIP/(webrtc-([0-9]{2,10}))$")


def endpoint_of(extension: str) -> str:
    """``1001`` -> ``webrtc-1001``: the page phone's PJSIP endpoint (also its AOR and SIP user name)."""
    return PREFIX + extension


def password_key(extension: str) -> str:
    """``IVR_WEBRTC_PASSWORD_1001``: the key of the page phone's SIP password in run/secrets.env."""
    return f"IVR_WEBRTC_PASSWORD_{extension}"


def page_phone(device: str) -> tuple[str, str] | None:
    """``PJSIP/webrtc-1001`` -> (``webrtc-1001``, ``1001``); None for any other device (a SIP phone, a trunk)."""
    found = _PAGE_DEVICE.match(device)
    return (found.group(1), found.group(2)) if found else None
