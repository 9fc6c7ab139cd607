"""App calls: the bank's app calls the hotline over WebRTC, as a customer its signed token names.

One module per concern, as the wire is split in ``ivr/telephony``:

- ``tokens``: the app's customer tokens (JWT via PyJWT): signature, expiry, audience, issuer; pure.
- ``sdp``: what an offer must be before any peer connection exists (size, audio, a codec we speak); pure.
- ``ice``: NAT traversal settings for aiortc (STUN/TURN) and the interfaces ICE may use.
- ``bridge``: the call's audio between the app's peer connection and Asterisk's AudioSocket channel.
- ``coding``: aiortc's audio encoding and decoding kept on the event loop (no thread hand-off per 20 ms frame).
- ``gateway``: the app calls themselves: limits, lifecycle, hang-up from either side, ICE and media loss.

The HTTP side (``POST /api/app-calls``, WHIP-style) is a thin handler in ``ivr/web/app_calls.py``; the
controller owns the gateway and asks it who an app call's customer is (``AppCallGateway.identify``).
"""
