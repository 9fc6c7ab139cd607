"""SIPp for the load test and the SIP abuse tests: scenarios (``*.xml``) and the callers' RTP (``media.py``).

- ``caller.xml``: a caller on the hotline through the simulator's trunk (ivr/ops/provision.py: ``sim-trunk``,
  identified by the address SIPp sends from, 127.0.0.10 by default), playing one pcap for its whole side of the
  IVR, then holding in the queue until the pause ends.
- ``flood.xml``: OPTIONS, REGISTER and INVITE from an address the SIP ACL does not admit, each expecting 403.
- ``media.py``: the pcaps, written here from espeak-ng speech and RFC 4733 keys (G.711, 20 ms, continuous
  sequence numbers and timestamps), and the timeline of when the caller's voice ends and each key goes.

Debian's ``sip-tester`` package is SIPp 3.6.1 with pcap play; ``play_pcap_audio`` needs root (raw socket).
"""
