"""What a call is: the call record (turns, path, outcome), the caller's customer profile and
contacts, and their Redis store with the pub/sub channels every concern listens on; and who can
take it: the agent directory's entries (``agent``: the model, its keys, its row importer).

Imports ``ivr.telephony`` (number normalization) and ``ivr.config`` only.
"""
