"""SDP offer checks (ivr.webrtc.sdp): what is refused before any peer connection exists, with which status."""

from __future__ import annotations

import pytest

from ivr.webrtc.sdp import OfferRefused, check_offer

#: An offer as aiortc (and, but for details, a browser) makes it: Opus, G.722, G.711, a data channel.
OFFER = """v=0
o=- 4005206801 4005206801 IN IP4 0.0.0.0
s=-
t=0 0
a=group:BUNDLE 0 1
a=msid-semantic:WMS *
m=audio 56775 UDP/TLS/RTP/SAVPF 96 9 0 8
c=IN IP4 127.0.0.1
a=sendrecv
a=mid:0
a=rtcp-mux
a=rtpmap:96 opus/48000/2
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=candidate:f957a2332b1715da3b0ef8ba684454eb 1 udp 2130706431 127.0.0.1 56775 typ host
a=end-of-candidates
a=ice-ufrag:GR5d
a=ice-pwd:MbatjcnVzcWFtFP6RFb6mj
a=fingerprint:sha-256 48:8C:1F:FE:6C:73:65:07:00:FD:8F:CA:54:78:37:AF:DC:8C:1D:CF:05:F1:7A:FD:D1:EF:6D:5B:08:E4:61:36
a=setup:actpass
m=application 45226 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 127.0.0.1
a=mid:1
a=sctp-port:5000
a=ice-ufrag:GR5d
a=ice-pwd:MbatjcnVzcWFtFP6RFb6mj
a=fingerprint:sha-256 48:8C:1F:FE:6C:73:65:07:00:FD:8F:CA:54:78:37:AF:DC:8C:1D:CF:05:F1:7A:FD:D1:EF:6D:5B:08:E4:61:36
a=setup:actpass
""".replace("\n", "\r\n")


def test_a_webrtc_audio_offer_passes_with_its_codecs_in_the_apps_order() -> None:
    summary = check_offer(OFFER)
    assert summary.codecs == ("opus/48000", "g722/8000", "pcmu/8000", "pcma/8000")
    assert summary.data_channel and summary.size == len(OFFER.encode())


def test_static_payload_types_need_no_rtpmap() -> None:
    offer = OFFER.replace("96 9 0 8", "0").replace("a=rtpmap:96 opus/48000/2\r\n", "")
    offer = "\r\n".join(line for line in offer.split("\r\n") if not line.startswith("a=rtpmap"))
    assert check_offer(offer).codecs == ("pcmu/8000",)


def refused(offer: str | bytes, max_bytes: int = 16_384) -> tuple[int, str]:
    with pytest.raises(OfferRefused) as caught:
        check_offer(offer, max_bytes)
    return caught.value.status, str(caught.value)


def test_a_megabyte_offer_is_413_before_it_is_parsed() -> None:
    assert refused(OFFER + "a=x\r\n" * 200_000) == (
        413, f"the SDP offer is {len(OFFER) + 1_000_000} bytes, over the gateway's limit of 16384 bytes")


def test_an_offer_without_audio_is_422() -> None:
    video_only = OFFER.replace("m=audio 56775", "m=video 56775")
    assert refused(video_only) == (422, "the SDP offer has no audio section (m=audio): an app call needs the "
                                        "customer's microphone")
    assert refused(OFFER.replace("m=audio 56775", "m=audio 0"))[0] == 422  # audio disabled


def test_an_offer_with_only_unsupported_codecs_is_415_naming_them() -> None:
    offer = OFFER.replace("96 9 0 8", "97 101")
    offer = "\r\n".join(line for line in offer.split("\r\n") if not line.startswith("a=rtpmap"))
    offer = offer.replace("a=mid:0", "a=mid:0\r\na=rtpmap:97 iLBC/8000\r\na=rtpmap:101 telephone-event/8000")
    assert refused(offer) == (415, "the offer's audio codecs (ilbc/8000, telephone-event/8000) are not ones the "
                                   "gateway speaks: offer Opus, G.722, PCMU, PCMA")


@pytest.mark.parametrize(("change", "message"), [
    (("UDP/TLS/RTP/SAVPF", "RTP/AVP"), "the audio section's transport is RTP/AVP: WebRTC media is DTLS-SRTP"),
    (("a=fingerprint:", "a=x-fingerprint:"), "no DTLS fingerprint"),
    (("a=ice-", "a=x-ice-"), "no ICE credentials"),
    (("a=sendrecv", "a=recvonly"), "the SDP offer's audio is recvonly: the app must send"),
    (("v=0", "hello"), "not an SDP offer: it starts with 'hello', not 'v=0'"),
    (("m=application 45226 UDP/DTLS/SCTP webrtc-datachannel", "m=application"), "malformed media line"),
    (("s=-", "s=\x01"), "SDP line 3 contains a control character"),
])
def test_malformed_or_non_webrtc_offers_are_422(change: tuple[str, str], message: str) -> None:
    status, text = refused(OFFER.replace(*change))
    assert status == 422 and message in text


def test_too_many_media_sections_and_non_text_are_422() -> None:
    many = OFFER + "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n" * 9
    assert refused(many) == (422, "the SDP offer has more than 8 media sections")
    assert refused(b"v=0\r\n\xff\xfe") == (422, "the SDP offer is not UTF-8 text")
    assert refused("  ") == (422, "the SDP offer is empty")
