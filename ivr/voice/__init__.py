"""Voice navigation: flows as data, understanding (pure), the navigator that runs a call's turns,
validation, text simulation and versioned publishing of flows.

Imports ``ivr.records``, ``ivr.telephony``, ``asr`` and ``tts``; never ``ivr.routing.router``, ``ivr.web.app``
or anything above.
"""
