"""What the ACD's tests share: a fake AMI at the boundary, a small directory, and steps of a call's life."""

from __future__ import annotations

import asyncio
from typing import Any

from ivr.records.agent import Agent
from ivr.records.call import CallRecord
from ivr.routing.acd import Acd


class FakeAmi:
    """Records what the ACD asks of Asterisk."""

    ready = True

    def __init__(self) -> None:
        self.actions: list[tuple[Any, ...]] = []

    async def setvar(self, channel: str | None, name: str, value: str) -> None:
        self.actions.append(("setvar", channel, name, value))

    async def redirect(self, channel: str, context: str, exten: str = "s", priority: int = 1) -> None:
        self.actions.append(("redirect", channel, context))

    async def originate(self, channel: str, **kwargs: Any) -> None:
        self.actions.append(("originate", channel, kwargs))

    async def hangup(self, channel: str, cause: int = 16) -> None:
        self.actions.append(("hangup", channel, cause))

    async def action(self, action: dict[str, Any], timeout: float = 10.0) -> list[Any]:
        return self.replies.get(action["Action"], [])

    replies: dict[str, list[dict[str, str]]] = {}  # noqa: RUF012  (per-test: set on the instance)

    def offers(self) -> list[tuple[str, str]]:
        """(caller channel, agent device) for every redirect to the offer context."""
        device, offers = {}, []
        for action in self.actions:
            if action[0] == "setvar" and action[2] == "IVR_OFFER_DEVICE":
                device[action[1]] = action[3]
            elif action[0] == "redirect" and action[2] == "ivr-offer":
                offers.append((action[1], device.get(action[1], "")))
        return offers

    def originates(self) -> list[tuple[str, dict[str, Any]]]:
        """(device, Originate's arguments) for every originate."""
        return [(action[1], action[2]) for action in self.actions if action[0] == "originate"]


AGENTS = [
    Agent(id="A1002", name="desk, dialect", device="PJSIP/1002", skills={"loans": 6}, dialects=["gyeongsang"]),
    Agent(id="A1004", name="desk", device="PJSIP/1004", skills={"loans": 6}),
    Agent(id="F2001", name="field", role="field", device="PJSIP/2001", skills={"loans": 9}, vip=True),
]


async def settle(acd: Acd) -> None:
    for _ in range(20):
        if not acd._tasks:
            return
        await asyncio.gather(*list(acd._tasks), return_exceptions=True)


async def ready(acd: Acd, *agent_ids: str) -> None:
    for agent_id in agent_ids:
        acd.on_ami_event({"Event": "DeviceStateChange", "Device": acd.seats[agent_id].agent.device,  # type: ignore[arg-type]
                          "State": "NOT_INUSE"})
        await acd.apply_presence({"agent": agent_id, "status": "ready"})
    await settle(acd)


async def hold(acd: Acd, call_id: str = "1700.1", *, tier: str = "standard", dialect: str | None = None,
               owner: str | None = None, patience: int = 60) -> CallRecord:
    call = CallRecord(call_id=call_id, caller="01012345678", tier=tier, dialect=dialect)
    acd.expect(call, "loans", "loans", 0, owner, (patience, "customer"))
    acd.on_ami_event({"Event": "UserEvent", "UserEvent": "IvrHold", "Uniqueid": call_id,  # type: ignore[arg-type]
                      "Channel": f"Local/{call_id}", "Queue": "loans"})
    await settle(acd)
    return call
