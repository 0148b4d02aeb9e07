"""The topic tree: `<prefix>/<site>/<ward>/<strap>/<leaf>`, and the gateway's own status topic
`<prefix>/<site>/<ward>/gateway/status` (docs/mqtt.md).

Every part is checked where it enters (the configuration, a strap id): not empty, no spaces at
its ends, none of `/ + #` (MQTT's separators and wildcards), so a topic always has its five
parts and a subscription filter never matches more than it says. The leaves are named here once;
each has its message type in `messages` (`Samples.LEAF` ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BadInput

__all__ = [
    "ALERT",
    "DAILY",
    "GATEWAY",
    "LEAVES",
    "SAMPLES",
    "SESSION",
    "STATE",
    "STATUS",
    "STRAP_LEAVES",
    "TopicError",
    "TopicTree",
    "topic_part",
]

SAMPLES = "samples"
STATE = "state"
ALERT = "alert"
SESSION = "session"
DAILY = "daily"
STRAP_LEAVES = (SAMPLES, STATE, ALERT, SESSION, DAILY)  # under <prefix>/<site>/<ward>/<strap>/
GATEWAY = "gateway"  # in place of a strap id: the gateway's own topics
STATUS = "status"  # <prefix>/<site>/<ward>/gateway/status
LEAVES = (STATUS, *STRAP_LEAVES)
SINK = "sink"  # <prefix>/sink/<client id>/status: a sink's own status (four levels, not five)


class TopicError(BadInput):
    """A topic part from a strap id or the configuration that MQTT cannot carry safely."""


def topic_part(what: str, value: str) -> str:
    if not value or any(ch in value for ch in "/+#\x00") or value != value.strip():
        raise TopicError(
            f"{what} {value!r} cannot be an MQTT topic part (empty, spaces at the ends, or / + #)"
        )
    return value


@dataclass(frozen=True)
class TopicTree:
    """`<prefix>/<site>/<ward>/<strap>/<leaf>` and the gateway's own status topic."""

    prefix: str
    site: str
    ward: str

    def __post_init__(self) -> None:
        for what in ("prefix", "site", "ward"):
            topic_part(what, getattr(self, what))

    def strap(self, strap_id: str, leaf: str) -> str:
        return f"{self.prefix}/{self.site}/{self.ward}/{topic_part('strap id', strap_id)}/{topic_part('leaf', leaf)}"

    @property
    def gateway_status(self) -> str:
        return f"{self.prefix}/{self.site}/{self.ward}/{GATEWAY}/{STATUS}"


def sink_status_topic(prefix: str, client_id: str) -> str:
    """`<prefix>/sink/<client id>/status`: a sink's retained status. Four levels, so no reader
    of `<prefix>/+/+/+/+` (the strap topics) takes it for a strap's."""
    return f"{topic_part('prefix', prefix)}/{SINK}/{topic_part('client id', client_id)}/{STATUS}"
