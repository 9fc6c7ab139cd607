"""Privacy: card data kept out of everything the house writes, and personal data redacted in text.

- ``cards``: what a secure capture may accept (card 13–19 digits with Luhn, expiry MMYY, PIN 4–6, one-time code 6),
  pure and tested in microseconds.
- ``verifier``: the only place the digits go: the configured verifier over HTTP, with a timeout; its answer is
  reduced to verified yes/no and the last four digits, never echoed.
- ``redaction``: one redaction step for text (transcripts, notes, dispositions, tickets, exports) with Microsoft
  Presidio's pattern recognizers and Korean ones, run before anything is written.
"""
