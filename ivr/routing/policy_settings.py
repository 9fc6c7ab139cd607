"""The routing policy as the settings describe it, and the service-level thresholds the KPIs judge queues by.

Apart from the router on purpose: reading the policy needs only the settings and the pure policy module, so
`ivr report` and the trainer's pages get the thresholds without importing the router and its solver (numpy,
scipy: about 0.6 s of a report's start-up)."""

from __future__ import annotations

import json
import logging
from typing import Any

from ivr.config import Settings
from ivr.routing.policy import Policy, PolicyError, policy_from_mapping
from ivr.voice.training.kpi import ServiceLevelTargets

log = logging.getLogger(__name__)


def policy_from_settings(settings: Settings) -> Policy:
    """The routing policy the settings describe (``IVR_ROUTING_*``, and the policy file if one is named).

    A bad value is refused with a message naming the field and the defaults are used instead: the ACD keeps
    routing (and nobody waiting is dropped) while someone fixes the file."""
    data: dict[str, Any] = {
        "service_level": [settings.routing_service_level, settings.routing_service_level_s],
        "queue_service_levels": dict(settings.routing_queue_service_levels),
        "hold_max_s": settings.routing_hold_max_s,
        "hold_patience_share": settings.routing_hold_patience_share,
        "outcome": dict(settings.routing_outcome),
    }
    try:
        if settings.routing_policy_file is not None:
            data.update(json.loads(settings.routing_policy_file.read_text(encoding="utf-8")))
        return policy_from_mapping(data)
    except PolicyError as exc:
        log.error("%s; routing with the default policy", exc)
    except (OSError, ValueError) as exc:
        log.error("routing policy file %s not read (%s); routing with the default policy",
                  settings.routing_policy_file, exc)
    return Policy()


def service_level_targets(settings: Settings) -> ServiceLevelTargets:
    """The routing policy's service-level thresholds (``IVR_ROUTING_SERVICE_LEVEL_S``, the per-queue
    ``IVR_ROUTING_QUEUE_SERVICE_LEVELS`` and the policy file), as the KPIs judge a queue by them."""
    policy = policy_from_settings(settings)
    return ServiceLevelTargets(policy.service_level.within_s,
                               {queue: target.within_s for queue, target in policy.queue_service_levels.items()})
