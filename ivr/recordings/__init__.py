"""Call recordings a regulator and a QA team can trust: found, played, verified and kept by policy.

- ``manifest``: the tamper-evident log (one SHA-256 per recording, each entry's hash covering the one before).
- ``crypto``: optional encryption at rest (AES-256-GCM, key from ``IVR_RECORDINGS_KEY``).
- ``timeline``: what happened when in a call (IVR turns, queue, agent, the muted card span, flags); pure.
- ``index``: the searchable index of recordings, legal holds and the access log (SQLite).
- ``library``: the service the controller, the ``/qa`` pages and ``ivr recordings`` use.
"""
