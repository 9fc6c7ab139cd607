"""What an app's SDP offer must be before the gateway opens anything for it. Pure (no I/O).

The checks are the cheap, line-level ones that decide the HTTP answer; aiortc parses the offer for real
afterwards. In order:

- size (413): a browser's audio offer is 2-6 KB; the cap (16 KB by default) stops a megabyte being parsed;
- text (422): SDP is ``v=0`` first, printable lines, a bounded number of media sections;
- audio (422): at least one ``m=audio`` section that is not disabled (port 0) and in which the app sends
  (``sendrecv`` or ``sendonly``): an app call is the customer's microphone;
- WebRTC (422): DTLS-SRTP (``UDP/TLS/RTP/SAVPF``, a ``fingerprint``) and ICE credentials: plain RTP is refused;
- codecs (415): the audio section offers Opus, G.722, PCMU or PCMA; anything else alone is named and refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_SDP_BYTES = 16_384
"""The default cap on an offer's size."""
MAX_MEDIA_SECTIONS = 8
"""An app call has one audio section and maybe a data channel; a few more are tolerated, not dozens."""
SUPPORTED_CODECS = {"opus/48000": "Opus", "g722/8000": "G.722", "pcmu/8000": "PCMU", "pcma/8000": "PCMA"}
"""Codecs the gateway (aiortc) speaks, by ``name/clock-rate`` as in ``a=rtpmap``, with their names for messages."""
#: Payload types with a static meaning (RFC 3551) that an offer may use without an rtpmap line.
STATIC_PAYLOADS = {"0": "pcmu/8000", "8": "pcma/8000", "9": "g722/8000"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_RTPMAP = re.compile(r"^a=rtpmap:(\d+) ([A-Za-z0-9_.-]+)/(\d+)")


class OfferRefused(Exception):
    """The offer cannot make an app call; ``status`` is the HTTP status (413, 415 or 422), ``str()`` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class OfferSummary:
    """What the checks learned of an acceptable offer (for the log and the app call's record)."""

    size: int
    """Bytes of the offer."""
    codecs: tuple[str, ...]
    """Supported audio codecs offered, in the app's order of preference (``opus/48000``, ``pcmu/8000``...)."""
    data_channel: bool
    """The offer has an ``m=application`` section (a data channel: DTMF and hang-up from the app)."""


@dataclass(slots=True)
class _Section:
    kind: str
    port: int
    proto: str
    formats: list[str]
    rtpmap: dict[str, str]
    direction: str = "sendrecv"
    fingerprint: bool = False
    ice: bool = False


def check_offer(sdp: str | bytes, max_bytes: int = MAX_SDP_BYTES) -> OfferSummary:
    """The offer's summary when it may make an app call; OfferRefused (status, reason) otherwise."""
    size = len(sdp.encode("utf-8") if isinstance(sdp, str) else sdp)
    if size > max_bytes:
        raise OfferRefused(413, f"the SDP offer is {size} bytes, over the gateway's limit of {max_bytes} bytes")
    if isinstance(sdp, bytes):
        try:
            sdp = sdp.decode("utf-8")
        except UnicodeDecodeError:
            raise OfferRefused(422, "the SDP offer is not UTF-8 text") from None
    if not sdp.strip():
        raise OfferRefused(422, "the SDP offer is empty")
    lines = [line.rstrip("\r") for line in sdp.split("\n") if line.strip()]
    if lines[0] != "v=0":
        raise OfferRefused(422, f"not an SDP offer: it starts with {lines[0][:40]!r}, not 'v=0'")
    bad = next((n for n, line in enumerate(lines, 1) if _CONTROL.search(line)), None)
    if bad is not None:
        raise OfferRefused(422, f"SDP line {bad} contains a control character")
    session_fingerprint = session_ice = False
    sections: list[_Section] = []
    for line in lines[1:]:
        if line.startswith("m="):
            sections.append(_media(line))
            if len(sections) > MAX_MEDIA_SECTIONS:
                raise OfferRefused(422, f"the SDP offer has more than {MAX_MEDIA_SECTIONS} media sections")
            continue
        section = sections[-1] if sections else None
        if line.startswith("a=fingerprint:"):
            if section is None:
                session_fingerprint = True
            else:
                section.fingerprint = True
        elif line.startswith("a=ice-ufrag:") or line.startswith("a=ice-pwd:"):
            if section is None:
                session_ice = True
            else:
                section.ice = True
        elif section is not None:
            if line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"):
                section.direction = line[2:]
            else:
                match = _RTPMAP.match(line)
                if match:
                    section.rtpmap[match.group(1)] = f"{match.group(2).lower()}/{match.group(3)}"
    audio = [s for s in sections if s.kind == "audio" and s.port != 0]
    if not audio:
        raise OfferRefused(422, "the SDP offer has no audio section (m=audio): an app call needs the customer's "
                                "microphone")
    sending = [s for s in audio if s.direction in ("sendrecv", "sendonly")]
    if not sending:
        raise OfferRefused(422, f"the SDP offer's audio is {audio[0].direction}: the app must send the customer's "
                                "audio (sendrecv)")
    for s in sending:
        if "SAVPF" not in s.proto:
            raise OfferRefused(422, f"the audio section's transport is {s.proto}: WebRTC media is DTLS-SRTP "
                                    "(UDP/TLS/RTP/SAVPF), plain RTP is refused")
        if not (s.fingerprint or session_fingerprint):
            raise OfferRefused(422, "the SDP offer has no DTLS fingerprint (a=fingerprint): WebRTC media is "
                                    "DTLS-SRTP")
        if not (s.ice or session_ice):
            raise OfferRefused(422, "the SDP offer has no ICE credentials (a=ice-ufrag, a=ice-pwd)")
    offered: list[str] = []
    for s in sending:
        for fmt in s.formats:
            codec = s.rtpmap.get(fmt) or STATIC_PAYLOADS.get(fmt)
            if codec and codec not in offered:
                offered.append(codec)
    supported = tuple(c for c in offered if c in SUPPORTED_CODECS)
    if not supported:
        named = ", ".join(offered) or "none named"
        raise OfferRefused(415, f"the offer's audio codecs ({named}) are not ones the gateway speaks: offer "
                                f"{', '.join(SUPPORTED_CODECS.values())}")
    return OfferSummary(size=size, codecs=supported,
                        data_channel=any(s.kind == "application" and s.port != 0 for s in sections))


def _media(line: str) -> _Section:
    """``m=<media> <port> <proto> <fmt> ...``"""
    parts = line[2:].split()
    if len(parts) < 3:
        raise OfferRefused(422, f"malformed media line {line[:60]!r}: expected 'm=<media> <port> <proto> <formats>'")
    port = parts[1].split("/")[0]
    if not port.isdigit() or int(port) > 65535:
        raise OfferRefused(422, f"malformed media line {line[:60]!r}: port {parts[1][:12]!r}")
    return _Section(kind=parts[0].lower(), port=int(port), proto=parts[2], formats=parts[3:], rtpmap={})
