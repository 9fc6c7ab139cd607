"""Automated quality checks on every call (issue #15, point 5): the agent's side of each recording transcribed
(Vosk free dictation, in a niced worker process), matched against a per-queue checklist kept as data, scored and
flagged; flagged calls make the QA review list and their moments the /qa timeline's flags.

- ``checklist``: the checklist's format and validation (pure; problems with a line, a path and a message).
- ``checks``: a call's words against its items: findings, score, flags (pure).
- ``transcribe``: the agent channel of a stereo recording, Vosk free dictation with word times.
- ``jobs``: the queue (SQLite, resumable), progress and the review list.
- ``service``: finding new recordings, checking one call, the worker loop.
- ``worker``: ``ivr qa worker`` and the controller's keeper of it.
"""
