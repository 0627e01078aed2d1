"""The config's models of what is served: checks, endpoints, regions, records, zones.

`Config` is the whole file, validated once; the structural checks live on the models,
the checks across sections in `failover.config.crosschecks`.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import dns.exception
import dns.name
from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from failover.config.fields import (
    AWS_REGIONS,
    CHECK_TYPES,
    HTTP_TYPES,
    MIN_REQUEST_INTERVAL,
    MIN_TOKEN_BYTES,
    REGION_NAME,
    TLS_TYPES,
    Between,
    Model,
    Port,
    Seconds,
    T,
    Weight,
    resolve_secret,
)
from failover.config.networks import DEFAULT_NETWORK, Network, RecordNetwork
from failover.config.notify import Sink
from failover.config.settings import (
    BindProvider,
    ControllerSettings,
    DrillSettings,
    HostName,
    NoneProvider,
    OwnershipSettings,
    PlanSettings,
    Provider,
    TsigKey,
    _host_name,
)
from failover.errors import SecretError
from failover.records import RECORD_TYPES, RecordType


class CheckTemplate(Model):
    """A health-check template with Route 53's fields and defaults, in snake_case."""

    type: Literal[CHECK_TYPES]  # type: ignore[valid-type]
    port: Port | None = None  # default: 80 (HTTP), 443 (HTTPS); TCP needs one
    resource_path: str | None = None  # default "/" for HTTP types
    fqdn: HostName | None = None  # Host header and SNI; probed by name when no ip is known
    search_string: Annotated[str, Field(max_length=255)] | None = None
    inverted: bool = False
    disabled: bool = False
    request_interval: Annotated[float, Between(MIN_REQUEST_INTERVAL, 3600, "request_interval", " s")] = 10.0
    failure_threshold: Annotated[int, Between(1, 10, "failure_threshold")] = 3
    measure_latency: bool = False
    enable_sni: bool = True
    verify_tls: bool = True  # Route 53 does not validate certificates; we do by default
    # a PEM file of the CA(s) that signed the endpoint's certificate (an internal CA),
    # trusted besides the system's; relative to the config file
    ca_file: str | None = None
    connect_timeout: Seconds | None = None  # default 4 s, TCP checks 10 s
    response_timeout: Seconds = 2.0  # status line after connect
    body_timeout: Seconds = 2.0  # search string within the first 5,120 bytes
    child_checks: list[str] | None = None  # CALCULATED only
    health_threshold: Annotated[int, Between(0, 256, "health_threshold")] | None = None
    vantage_threshold_percent: Annotated[int, Between(0, 99, "vantage_threshold_percent", "%")] = 18

    @property
    def effective_port(self) -> int | None:
        """The probed port: the configured one, else 443 for HTTPS types, 80 for HTTP."""
        if self.port is not None:
            return self.port
        if self.type in TLS_TYPES:
            return 443
        if self.type in HTTP_TYPES:
            return 80
        return None

    @property
    def effective_connect_timeout(self) -> float:
        """Route 53: connect within 4 s, or 10 s for TCP checks."""
        if self.connect_timeout is not None:
            return self.connect_timeout
        return 10.0 if self.type == "TCP" else 4.0


def _endpoint_value(value: str) -> str:
    value = value.strip()
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    try:
        return _host_name(value) + "."
    except PydanticCustomError:
        raise PydanticCustomError("address", "'{v}' is neither an IP address nor a host name",
                                  {"v": value}) from None


class Endpoint(Model):
    """One served value in a region and how to probe it.

    `address` is what DNS answers (an IPv4/IPv6 address, or a host name for CNAME records);
    `ip`, `fqdn` and `port` override what is probed.
    """

    address: Annotated[str, AfterValidator(_endpoint_value)]
    name: str | None = None
    check: str | None = None  # a check template; none = always healthy, as in Route 53
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    fqdn: HostName | None = None
    port: Port | None = None

    @property
    def kind(self) -> RecordType:
        """The record type this endpoint can be served in."""
        try:
            return "A" if ipaddress.ip_address(self.address).version == 4 else "AAAA"
        except ValueError:
            return "CNAME"

    @property
    def label(self) -> str:
        """How people and endpoint ids name it: its name, else its address."""
        return self.name or self.address


class Region(Model):
    """A region: the endpoints that serve from it (records without a pool answer with
    these; a region may have none when every record of it names a pool)."""

    aws_region: str | None = None  # Route 53 latency records; default: the region's name
    # when that is an AWS region
    endpoints: list[Endpoint] = Field(default_factory=list)


SIMPLE_NAME = re.compile(r"^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.){1,127}$")


def _record_name(value: str) -> str:
    if len(value) <= 254 and SIMPLE_NAME.match(value):
        return value  # already absolute, lower-case and plain: what dnspython would give
    try:
        return dns.name.from_text(value).to_text().lower()
    except dns.exception.DNSException as exc:
        raise PydanticCustomError("dns_name", "'{v}' is not a valid DNS name: {e}",
                                  {"v": value, "e": str(exc)}) from None


Tier = str | list[str]


class Record(Model):
    """A DNS name the controller manages and the routing policy that picks its answer."""

    name: Annotated[str, AfterValidator(_record_name)]
    type: Literal[RECORD_TYPES]  # type: ignore[valid-type]
    ttl: Annotated[int, Between(0, 2147483647, "ttl", " s")] = 60
    policy: Literal["failover", "weighted", "latency"]
    order: list[Tier] | None = None  # failover: tiers, first healthy answers
    weights: dict[str, Weight] | None = None  # weighted
    regions: list[str] | None = None  # latency; default: every region
    fail_mode: Literal["open", "last_known_good", "closed"] = "open"
    failback_delay: Annotated[float, Between(0, None, "failback_delay", " s")] = 0.0
    latency_hysteresis_percent: Annotated[float, Between(0, 100, "latency_hysteresis_percent", "%")] = 10.0
    latency_hysteresis_ms: Annotated[float, Between(0, None, "latency_hysteresis_ms", " ms")] = 5.0
    # seconds an answer chosen by latency stays before latency may move it again (health
    # still moves it at once); default: the record's TTL
    latency_min_hold: Annotated[float, Between(0, 86400, "latency_min_hold", " s")] | None = None
    pool: str | None = None  # a pool of per-region endpoints (pools:); default: the regions'
    # per client network (networks:): its own order, weights or regions; unset: the record's
    networks: dict[str, RecordNetwork] | None = None

    @property
    def tiers(self) -> tuple[tuple[str, ...], ...]:
        """Failover tiers in order; a tier of several regions answers together."""
        return tuple((t,) if isinstance(t, str) else tuple(t) for t in self.order or ())


class ZoneSpec(Model):
    """One zone of several, and where its records are written."""

    zone: Annotated[str, AfterValidator(_record_name)]
    provider: Provider = NoneProvider()


PoolName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]


class Config(Model):
    """A whole failover configuration: one zone (`zone`, `provider`) or several (`zones`)."""

    zone: Annotated[str, AfterValidator(_record_name)] = ""
    provider: Provider = NoneProvider()
    zones: Annotated[list[ZoneSpec], Field(min_length=1)] | None = None
    controller: ControllerSettings = ControllerSettings()
    plan: PlanSettings = PlanSettings()
    ownership: OwnershipSettings = OwnershipSettings()
    drill: DrillSettings = DrillSettings()
    checks: dict[str, CheckTemplate] = Field(default_factory=dict)
    regions: Annotated[dict[str, Region], Field(min_length=1)]
    # a service's own endpoints per region: pool -> region -> endpoints (records: pool:)
    pools: dict[PoolName, dict[str, Annotated[list[Endpoint], Field(min_length=1)]]] = Field(
        default_factory=dict)
    records: Annotated[list[Record], Field(min_length=1)]
    # client networks, each answered on its own (BIND views, Route 53 geolocation);
    # absent: one answer for every client
    networks: dict[str, Network] = Field(default_factory=dict)
    # where failovers, failbacks, a degraded controller, overrides and drills are told
    notify: list[Sink] = Field(default_factory=list)

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _memo: dict[str, Any] = PrivateAttr(default_factory=dict)

    def memo(self, key: str, make: Callable[[], T]) -> T:
        """A value derived from this (immutable) config, made once on first use."""
        if key not in self._memo:
            self._memo[key] = make()
        return cast(T, self._memo[key])

    @field_validator("regions")
    @classmethod
    def _region_names(cls, regions: dict[str, Region]) -> dict[str, Region]:
        for name in regions:
            if not REGION_NAME.match(name):
                raise PydanticCustomError(
                    "region_name",
                    "region name '{n}' must be letters, digits, '.', '_' or '-' (at most 63)",
                    {"n": name})
        return regions

    @model_validator(mode="after")
    def _first_zone(self) -> Config:
        # the one-zone fields name the first zone when `zones` is given, so code that
        # shows one zone (titles, the drill) keeps working
        if self.zones and not self.zone:
            object.__setattr__(self, "zone", self.zones[0].zone)
            object.__setattr__(self, "provider", self.zones[0].provider)
        return self

    @property
    def zone_specs(self) -> list[ZoneSpec]:
        """Every zone with its provider (one for the one-zone form)."""
        return list(self.zones) if self.zones else [ZoneSpec(zone=self.zone,
                                                             provider=self.provider)]

    def zone_of(self, name: str) -> str | None:
        """The zone a name belongs to: the longest zone suffix; None when outside all."""
        zones = self.memo("zone_names", lambda: sorted((z.zone for z in self.zone_specs),
                                                       key=len, reverse=True))
        for z in zones:
            if name == z or name.endswith("." + z) or z == ".":
                return z
        return None

    @property
    def network_names(self) -> tuple[str, ...]:
        """The client networks, default last; () when the config has none."""
        nets = self.networks
        if not nets:
            return ()
        return (*(n for n in nets if n != DEFAULT_NETWORK), DEFAULT_NETWORK)

    def record_for(self, record: Record, network: str) -> Record:
        """A record as one network sees it: its own order, weights or regions for that
        network, else the record itself (the same object)."""
        spec = (record.networks or {}).get(network)
        if spec is None:
            return record
        given = {f: getattr(spec, f) for f in ("order", "weights", "regions")
                 if getattr(spec, f) is not None}
        return record.model_copy(update={**given, "networks": None}) if given else record

    def endpoints_of(self, region: str, pool: str | None = None) -> list[tuple[str, Endpoint]]:
        """(endpoint id, endpoint) of a region, in a pool or the region's own."""
        if pool is None:
            return [(f"{region}/{ep.label}", ep) for ep in self.regions[region].endpoints]
        return [(f"{region}/{pool}/{ep.label}", ep)
                for ep in self.pools.get(pool, {}).get(region, [])]

    def all_endpoints(self) -> list[tuple[str, str | None, str, Endpoint]]:
        """Every endpoint: (region, pool or None, endpoint id, endpoint)."""
        def make() -> list[tuple[str, str | None, str, Endpoint]]:
            out: list[tuple[str, str | None, str, Endpoint]] = []
            for rname in self.regions:
                out += [(rname, None, eid, ep) for eid, ep in self.endpoints_of(rname)]
            for pname, regions in self.pools.items():
                out += [(rname, pname, eid, ep) for rname in regions if rname in self.regions
                        for eid, ep in self.endpoints_of(rname, pname)]
            return out
        return self.memo("all_endpoints", make)

    @property
    def base_dir(self) -> Path:
        """The directory of the config file: relative paths in it resolve from here."""
        return self._base_dir

    def path(self, value: str) -> Path:
        """Resolve a path from the config relative to the config file's directory."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self._base_dir / p

    def aws_region_of(self, region: str) -> str | None:
        """The AWS region Route 53 latency records use for `region`: its `aws_region`, or
        its own name when that is an AWS region (us-east-1 needs nothing more)."""
        given = self.regions[region].aws_region
        return given or (region if region in AWS_REGIONS else None)

    def record_regions(self, record: Record) -> list[str]:
        """Every region a record can answer from, in config order."""
        if record.policy == "failover":
            return [r for tier in record.tiers for r in tier]
        if record.policy == "weighted":
            return list(record.weights or {})
        return list(record.regions) if record.regions is not None else list(self.regions)

    def check_for(self, endpoint: Endpoint) -> CheckTemplate | None:
        """The check template an endpoint uses, or None when it is not checked."""
        return self.checks[endpoint.check] if endpoint.check else None

    def api_token(self) -> tuple[str, str] | None:
        """The API's bearer token and its name for the history (its env var or file);
        None when no token is configured.

        Raises SecretError when the variable or file is missing, blank or shorter than
        MIN_TOKEN_BYTES: a blank token would let anyone change DNS.
        """
        c = self.controller
        if not (c.token_env or c.token_file):
            return None
        secret = resolve_secret(c.token_env, c.token_file, "controller.token", self._base_dir)
        value = secret.get_secret_value()
        where = f"environment variable {c.token_env}" if c.token_env else f"file {c.token_file}"
        if len(value.encode()) < MIN_TOKEN_BYTES:
            raise SecretError(f"controller.token: the API token in {where} is "
                              f"{len(value.encode())} bytes; at least {MIN_TOKEN_BYTES} are "
                              "needed (for example: openssl rand -hex 32)")
        return c.token_env or str(c.token_file), value

    def secret_files(self) -> list[Path]:
        """Every secret file the config names (TSIG keys, the API token, etcd's password)."""
        files = [self.controller.token_file]
        for z in self.zone_specs:
            tsig = getattr(z.provider, "tsig", None)
            files.append(tsig.secret_file if tsig is not None else None)
            views = getattr(z.provider, "views", None) or {}
            files += [v.tsig.secret_file for v in views.values()]
        if self.controller.cluster is not None:
            files.append(self.controller.cluster.etcd.password_file)
        for sink in self.notify:
            files += [getattr(sink, f, None) for f in ("url_file", "routing_key_file",
                                                        "secret_file")]
        return [self.path(f) for f in files if f]

    def tsig_secret(self, provider: Any = None, where: str = "provider") -> SecretStr | None:
        """A provider's TSIG secret (default: the first zone's), resolved now; None when
        no TSIG is configured.

        Raises SecretError when the variable or file is missing or not base64.
        """
        provider = provider or self.provider
        if not isinstance(provider, BindProvider) or provider.tsig is None:
            return None
        return self.key_secret(provider.tsig, f"{where}.tsig")

    def view_secrets(self, provider: BindProvider, where: str = "provider"
                     ) -> dict[str, SecretStr]:
        """Each view's TSIG secret (provider.views), by network, resolved now.

        Raises SecretError when a variable or file is missing or not base64.
        """
        return {net: self.key_secret(view.tsig, f"{where}.views.{net}.tsig")
                for net, view in (provider.views or {}).items()}

    def key_secret(self, key: TsigKey, where: str) -> SecretStr:
        """A TSIG key's secret, resolved now. Raises SecretError when it is missing or
        not base64."""
        secret = resolve_secret(key.secret_env, key.secret_file, where, self._base_dir)
        try:
            base64.b64decode(secret.get_secret_value(), validate=True)
        except binascii.Error:
            raise SecretError(f"{where}: the TSIG secret is not valid base64") from None
        return secret
