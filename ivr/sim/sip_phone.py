"""What every simulated SIP phone shares, whatever SIP stack it runs (pyVoIP for G.711, baresip for G.722).

The phone registers as the simulator's extension and dials ``<hotline>*<caller number>``; Asterisk's
[sim-phone] context presents that number. Several phones may call from the same extension at once, so a
phone finds its own channel in Asterisk by the SIP Call-ID the channel carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable

from panoramisk.message import Message

from ivr.config import Settings, read_env_file
from ivr.ops.provision import sip_password_key
from ivr.sim.simulator import CallDriver, SimulatedCall, SimulationError
from ivr.telephony.ami import AmiClient, AmiError

#: How long a placed call may take to show up as a channel in Asterisk.
CHANNEL_WAIT_S = 10.0


def sip_password(settings: Settings, extension: str) -> str:
    """The SIP password of an extension: the environment first, then run/secrets.env (written by `ivr setup`)."""
    key = sip_password_key(extension)
    password = os.environ.get(key) or read_env_file(settings.run_dir / "secrets.env").get(key)
    if not password:
        raise SimulationError(f"no {key} in the environment or {settings.run_dir / 'secrets.env'}: run `ivr setup`")
    return password


def local_ip_towards(host: str, port: int) -> str:
    """The local address the kernel would use to reach ``host`` (the phone's contact address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port))
        return str(probe.getsockname()[0])


class SipPhoneDriver(CallDriver):
    """A CallDriver whose caller is a SIP phone registered as ``settings.sim_extension``."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.extension = settings.sim_extension
        self._candidates: list[tuple[str, str]] = []
        """(uniqueid, channel) of this extension's new channels, from AMI."""

    def password(self) -> str:
        return sip_password(self.settings, self.extension)

    def on_ami(self, sim: SimulatedCall, event: Message) -> None:
        channel = event.get("Channel", "")
        if event.get("Event") == "Newchannel" and channel.startswith(f"PJSIP/{self.extension}-"):
            self._candidates.append((event.get("Uniqueid", ""), channel))

    async def find_channel(self, sim: SimulatedCall, ami: AmiClient, sip_call_id: str, number: str,
                           refused: Callable[[], str | None] = lambda: None) -> None:
        """Learn ``sim.call_id`` and ``sim.caller_channel``: the channel carrying ``sip_call_id``.

        ``refused``: why the call ended before it got a channel, if it did (checked while waiting).
        """
        checked: set[str] = set()
        deadline = time.monotonic() + CHANNEL_WAIT_S
        while time.monotonic() < deadline:
            for uid, channel in list(self._candidates):
                if uid in checked:
                    continue
                checked.add(uid)
                with contextlib.suppress(AmiError):
                    reply = await ami.action({"Action": "Getvar", "Channel": channel,
                                              "Variable": "CHANNEL(pjsip,call-id)"})
                    if isinstance(reply, Message) and reply.get("Value") == sip_call_id:
                        sim.call_id, sim.caller_channel = uid, channel
                        return
            reason = refused()
            if reason is not None:
                raise SimulationError(f"Asterisk refused the SIP call to {number} from extension "
                                      f"{self.extension}: {reason}")
            await asyncio.sleep(0.05)
        raise SimulationError(f"the SIP call to {number} from extension {self.extension} got no channel in "
                              f"Asterisk within {CHANNEL_WAIT_S:g} s (see run/asterisk/log/messages.log)")
