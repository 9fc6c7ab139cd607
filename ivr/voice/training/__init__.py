"""The trainer loop: the archive's analytics, KPIs, free labels, clusters of failed turns and retention.

Pure cores (``analytics``, ``kpi``, ``labels``) read archive rows (``ivr.records.archive``) and are tested in
microseconds; ``archiving`` writes finished calls (never failing a call), ``service`` is what the trainer's and
reports' pages and ``ivr report`` ask, ``retention`` purges old turn audio, ``charts`` draws (matplotlib, SVG).

Imports ``ivr.records`` and ``ivr.voice.flow``; nothing above ``ivr.voice``.
"""
