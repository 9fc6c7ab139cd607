"""What a call is: the call record (turns, path, outcome), the caller's customer profile and
contacts, and their Redis store with the pub/sub channels every concern listens on.

Imports ``ivr.telephony`` (number normalization) and ``ivr.config`` only.
"""
