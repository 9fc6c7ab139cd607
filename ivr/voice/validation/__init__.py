"""Checking a flow before it goes live: ``ivr dialplan validate``, the web editor and every publish use this.

``validate_text`` takes the YAML as an admin wrote it and returns every problem found, each with the file,
the line (from PyYAML's composed nodes, so it points at the text the admin typed) and the path of the
problem in the flow ("nodes.main_menu.routes.loan"). Errors keep a flow from being published; warnings
(a phrase word the speech model does not know, an intent no node uses) do not.

The checks, in order (``validate.py``), stopping early only when there is nothing left to check:

1. size (``MAX_FLOW_BYTES``) and YAML syntax, duplicate keys, aliases that expand without bound;
2. the format (the pydantic models of ``ivr.voice.flow``, i.e. its JSON Schema), an unknown node type named as such;
3. references inside the flow: start, next, routes to intents and nodes;
4. the graph: every node reachable from the start; from every node some end (route, transfer, hangup,
   callback offer) reachable; no loop of nodes that advance by themselves (say, self-service);
5. a person within two failures: the engine's fallback queue exists, key 0 is left to it, the agent
   intent can be said in every language;
6. what exists outside the flow (``Context``): queues (asterisk_conf/queues.conf), skills (the agent
   directory), transfer targets (extensions), placeholders in prompts;
7. every declared language has every prompt;
8. no phrase or key claimed by two intents of the same question;
9. phrase words outside the model pack's vocabulary (Vosk silently ignores them): warnings naming the word.

Where they live:

- ``problems``: ``Problem``, ``Report``, ``InvalidFlow``; the ``Checker`` that collects problems and finds
  each one's line in the YAML;
- ``structure``: 1, 2, 4 and 5 — YAML, format, the graph (through the node models' ``exits()``), a person;
- ``semantics``: 6, 7, 8 and the rest (thresholds, intents no question routes);
- ``vocabulary``: 9;
- ``context``: ``Context`` and ``load_context``, which reads this installation's queues.conf, agent directory
  (Redis) and the model packs' word lists — the package's only I/O;
- ``validate``: ``validate_text``, running the checks in order.

What it may import: ``ivr.voice.flow`` and ``ivr.voice.understanding`` (the format and phrase matching),
``asr`` (phrase words, word lists), ``ivr.config``, ``ivr.records.agent`` (the agent directory's entries, a layer
below), PyYAML and pydantic. The checks are pure: no I/O except the vocabulary lookup a ``Context`` carries.
"""

from __future__ import annotations

from ivr.voice.flow import MAX_FLOW_BYTES
from ivr.voice.validation.context import (
    QUEUES_CONF,
    Context,
    asterisk_queues,
    default_context,
    load_context,
    model_vocabulary,
)
from ivr.voice.validation.problems import InvalidFlow, Problem, Report, Severity, locate, path_text
from ivr.voice.validation.structure import MAX_EXPANDED_VALUES
from ivr.voice.validation.validate import validate_text

__all__ = ["MAX_EXPANDED_VALUES", "MAX_FLOW_BYTES", "QUEUES_CONF", "Context", "InvalidFlow", "Problem", "Report",
           "Severity", "asterisk_queues", "default_context", "load_context", "locate", "model_vocabulary",
           "path_text", "validate_text"]
