"""The config's notification sinks (`notify:`): Slack, PagerDuty, a webhook of our own.

Every URL that carries a credential (a Slack incoming webhook, a webhook's own URL) and
every key (PagerDuty's routing key, a webhook's HMAC secret) is referenced by
environment variable or file and resolved when the controller starts, never written
inline: an inline `url:`, `routing_key:` or `secret:` is refused with the way to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr
from pydantic_core import PydanticCustomError

from failover.config.fields import Between, EnvName, Model, resolve_secret
from failover.durations import parse_duration

if TYPE_CHECKING:
    from failover.config.models import Config

NotifyEvent = Literal["failover", "failback", "degraded", "override", "drill"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = ("failover", "failback", "degraded", "override", "drill")
PAGING: tuple[NotifyEvent, ...] = ("failover", "failback", "degraded")  # PagerDuty's default
PAGERDUTY_ENQUEUE = "https://events.pagerduty.com/v2/enqueue"
SINK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def _seconds(value: object) -> object:
    """`30s`, `2m` or a number of seconds."""
    if isinstance(value, str):
        seconds = parse_duration(value)
        if seconds is None:
            raise PydanticCustomError("duration", "'{v}' is not a duration like 30s, 2m or 1h",
                                      {"v": value})
        return seconds
    return value


def _endpoint(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value.strip()):
        raise PydanticCustomError("url", "'{v}' is not an http(s) URL", {"v": value})
    return value.strip()


def _sink_name(value: str) -> str:
    if not SINK_NAME.match(value):
        raise PydanticCustomError("sink_name", "a sink's name is letters, digits, '.', '_' "
                                  "or '-' (at most 63)")
    return value


Interval = Annotated[float, BeforeValidator(_seconds),
                     Between(0, 86400, "min_interval", " s")]


class SinkBase(Model):
    """What every sink has: a name, the events it takes, how often it may be told."""

    name: Annotated[str, AfterValidator(_sink_name)] | None = None  # default: its type
    # the kinds of event it is told of: failover, failback, degraded, override, drill
    events: Annotated[list[NotifyEvent], Field(min_length=1)] = Field(
        default_factory=lambda: list(NOTIFY_EVENTS))
    # at most one message per this long (30s, 2m): what happens meanwhile waits and goes
    # out as one message (a 10,000-name failover is one message naming the count)
    min_interval: Interval = 30.0
    # seconds one delivery attempt may take (connect, send, answer) before it is retried
    timeout: Annotated[float, Between(0.1, 60, "timeout", " s")] = 5.0
    # delivery attempts of one message (the first and the retries, with backoff)
    attempts: Annotated[int, Between(1, 10, "attempts")] = 4


class UrlSink(SinkBase):
    """A sink whose URL is a credential: by environment variable or file only."""

    url_env: EnvName | None = None  # the environment variable holding the URL
    url_file: str | None = None  # a file holding the URL (relative to the config)
    # Declared only so an inline URL gets a clear error instead of "unknown field".
    url: SecretStr | None = Field(default=None, json_schema_extra={"deprecated": True})


class SlackSink(UrlSink):
    """A Slack incoming webhook: a readable line per change (what moved, why)."""

    type: Literal["slack"]  # slack: a Slack incoming webhook


class WebhookSink(UrlSink):
    """Our event JSON POSTed to a URL, signed with HMAC-SHA256 when a secret is given."""

    type: Literal["webhook"]  # webhook: our event JSON, optionally HMAC-signed
    secret_env: EnvName | None = None  # the environment variable holding the HMAC key
    secret_file: str | None = None  # a file holding the HMAC key


class PagerDutySink(SinkBase):
    """PagerDuty Events API v2: trigger on a failover away from a region and on a
    degraded controller, resolve when it clears; one incident per region."""

    type: Literal["pagerduty"]  # pagerduty: PagerDuty Events API v2
    # the kinds it is told of: by default failover, failback (resolve) and degraded
    events: Annotated[list[NotifyEvent], Field(min_length=1)] = Field(
        default_factory=lambda: list(PAGING))
    routing_key_env: EnvName | None = None  # the environment variable holding the key
    routing_key_file: str | None = None  # a file holding the integration's routing key
    # Declared only so an inline key gets a clear error instead of "unknown field".
    routing_key: SecretStr | None = Field(default=None, json_schema_extra={"deprecated": True})
    endpoint: Annotated[str, AfterValidator(_endpoint)] = PAGERDUTY_ENQUEUE  # Events API URL
    # the incident's severity for a failover (degraded: error)
    severity: Literal["critical", "error", "warning", "info"] = "critical"


Sink = Annotated[SlackSink | PagerDutySink | WebhookSink, Field(discriminator="type")]


def sink_names(sinks: list[SlackSink | PagerDutySink | WebhookSink]) -> list[str]:
    """Each sink's name: its own, else its type (`slack`, `slack-2` for a second one)."""
    out: list[str] = []
    for s in sinks:
        name = s.name or s.type
        n = 2
        while name in out:
            name, n = f"{s.name or s.type}-{n}", n + 1
        out.append(name)
    return out


def notify_checks(cfg: Config) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """The notification sinks' references: one of env or file, never inline."""
    names = set()
    for i, s in enumerate(cfg.notify):
        at: tuple[str | int, ...] = ("notify", i)
        if s.name is not None:
            if s.name in names:
                yield ((*at, "name"), f"sink name {s.name} is used twice")
            names.add(s.name)
        if isinstance(s, PagerDutySink):
            if s.routing_key is not None:
                yield ((*at, "routing_key"), "inline routing keys are not allowed: use "
                       "routing_key_env or routing_key_file")
            elif bool(s.routing_key_env) == bool(s.routing_key_file):
                yield (at, "give exactly one of routing_key_env or routing_key_file")
            continue
        if s.url is not None:
            yield ((*at, "url"), "inline URLs are not allowed (a webhook URL holds its "
                   "credential): use url_env or url_file")
        elif bool(s.url_env) == bool(s.url_file):
            yield (at, "give exactly one of url_env or url_file")
        if isinstance(s, WebhookSink) and s.secret_env and s.secret_file:
            yield ((*at, "secret_env"), "give at most one of secret_env or secret_file")


def sink_secrets(sink: SlackSink | PagerDutySink | WebhookSink, where: str,
                 base: Path) -> tuple[str, str, bytes | None]:
    """(URL, PagerDuty routing key or "", HMAC key or None) of a sink, resolved now.

    Raises SecretError naming the variable or file (never the value)."""
    if isinstance(sink, PagerDutySink):
        key = resolve_secret(sink.routing_key_env, sink.routing_key_file,
                             f"{where}.routing_key", base)
        return sink.endpoint, key.get_secret_value(), None
    url = resolve_secret(sink.url_env, sink.url_file, f"{where}.url", base).get_secret_value()
    hmac_key = None
    if isinstance(sink, WebhookSink) and (sink.secret_env or sink.secret_file):
        hmac_key = resolve_secret(sink.secret_env, sink.secret_file, f"{where}.secret",
                                  base).get_secret_value().encode()
    return url, "", hmac_key
