"""Notifications (`notify:`): failovers, failbacks, a degraded controller, overrides and
drills told to Slack, PagerDuty or a webhook, off the event loop.

The house hands every history event to `Notifier.offer` (one call, where events are
recorded); the classifier (notice.py) turns the few that matter into notices, each
sink's outbox (outbox.py) coalesces them and sends from a thread of its own, in the
formats of formats.py. Only the instance that writes DNS (alone, or the fleet's
leader) tells, and a dry run tells nothing.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import TYPE_CHECKING, Any

from failover.errors import SecretError
from failover.notify.notice import Classifier, Notice

if TYPE_CHECKING:
    from failover.config import Config
    from failover.metrics import Metrics
    from failover.notify.outbox import Outbox
    from failover.state.store import Event

__all__ = ["Notice", "Notifier"]

log = logging.getLogger(__name__)


class Notifier:
    """The sinks of the config in force, and the classifier that feeds them."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.classifier = Classifier()
        self.outboxes: list[Outbox] = []
        self.configured: Any = None  # the sinks (and their secrets) the outboxes were made from
        self.lock = threading.Lock()  # offer runs on the loop and on the decide thread

    def configure(self, cfg: Config) -> None:
        """Take up a config's sinks (at start and on reload). A sink whose URL or key
        cannot be read is kept, failing each delivery, and says why in /status: a
        notification's trouble never stops failover."""
        from failover.config.notify import sink_names, sink_secrets
        from failover.notify.formats import Origin
        from failover.notify.outbox import Outbox

        zones = ", ".join(z.zone for z in cfg.zone_specs)
        origin = Origin(zone=zones, owner=cfg.ownership.owner_id,
                        host=f"failover@{socket.gethostname()}")
        # URLs and keys read again: a reload takes up a rotated one
        made: list[tuple[str, Any, Any, str | None]] = []
        for i, (name, sink) in enumerate(zip(sink_names(cfg.notify), cfg.notify, strict=True)):
            target, broken = None, None
            try:
                target = sink_secrets(sink, f"notify[{i}]", cfg.base_dir)
            except SecretError as exc:
                broken = str(exc)
            made.append((name, sink, target, broken))
        if (made, origin) == self.configured:
            return  # the same sinks: they keep what waits and their counts
        old, self.outboxes = self.outboxes, []
        for o in old:
            o.close()
        self.configured = (made, origin)
        for name, sink, target, broken in made:
            if broken:
                log.error("event=notify_sink_broken sink=%s error=%r", name, broken)
            self.outboxes.append(Outbox(name, sink, target, broken, origin, self.metrics))

    def offer(self, event: Event) -> None:
        """A history event as it is recorded: told to the sinks that take its kind."""
        if not self.outboxes:
            return
        with self.lock:
            notices = self.classifier.notices(event)
        for n in notices:
            for o in self.outboxes:
                o.offer(n)

    def status(self) -> list[dict[str, Any]]:
        """Each sink: its counts and its last delivery (for /status)."""
        return [o.status() for o in self.outboxes]

    def close(self, wait: float = 2.0) -> None:
        """Stop every sink: what waits is sent once, within `wait` seconds in all."""
        import time

        for o in self.outboxes:
            o.close()
        deadline = time.monotonic() + wait
        for o in self.outboxes:
            o.thread.join(max(0.0, deadline - time.monotonic()))
