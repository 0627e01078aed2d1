"""The config's settings models: DNS providers, the controller and its fleet, the guards.

Everything that tunes a stage rather than naming what is served: where records are
written (rfc2136/BIND, zonefile, Route 53, none), the service (state, listener, token,
history, drills), the fleet (etcd, vantages), ownership markers and plan guards.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    model_validator,
)
from pydantic_core import PydanticCustomError

from failover.config.fields import TSIG_ALGORITHMS, Between, EnvName, Model, Port, Seconds


class TsigKey(Model):
    """A TSIG key for RFC 2136 updates; the secret is referenced, never written inline."""

    name: str
    algorithm: Literal[TSIG_ALGORITHMS] = "hmac-sha256"  # type: ignore[valid-type]
    secret_env: EnvName | None = None
    secret_file: str | None = None
    # Declared only so an inline secret gets a clear error instead of "unknown field".
    secret: SecretStr | None = Field(default=None, json_schema_extra={"deprecated": True})


class ViewSpec(Model):
    """A server-side view (BIND) that answers one client network, chosen by its key."""

    tsig: TsigKey  # the key whose signed requests (AXFR, UPDATE, queries) this view answers


class BindProvider(Model):
    """Any RFC 2136 primary (BIND, Knot DNS, PowerDNS...) updated with TSIG-signed
    UPDATEs and read by AXFR; `rfc2136` and `bind` are the same provider."""

    type: Literal["rfc2136", "bind"]
    server: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: Port = 53
    tsig: TsigKey | None = None
    # one view per client network (networks:), each read, written and confirmed with its key
    views: dict[str, ViewSpec] | None = None
    transport: Literal["udp", "tcp"] = "udp"
    timeout: Seconds = 2.0


class ZonefileProvider(Model):
    """A zone file on disk that the controller rewrites, checks, reloads and confirms."""

    type: Literal["zonefile"]
    path: str
    # commands, with {zone} (no trailing dot) and {file} replaced; defaults are BIND's
    reload: str | None = None  # default: `<rndc> reload {zone}`
    rndc: str = "rndc"  # the rndc command (with -s/-p/-c) the BIND defaults use
    freeze: bool = False  # a dynamic zone: freeze before the edit, thaw after
    freeze_command: str | None = None  # default: `<rndc> freeze {zone}`
    thaw_command: str | None = None  # default: `<rndc> thaw {zone}` (thaw reloads)
    checkzone: bool = True  # check the new file before it replaces the old
    check_command: str | None = None  # default: `named-checkzone -q {zone} {file}`
    # more variables the commands see (names); else only PATH, HOME, TZ and the locale
    pass_env: tuple[EnvName, ...] = ()
    server: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address("127.0.0.1")
    port: Port = 53  # where the zone is served, to confirm the new serial
    timeout: Seconds = 5.0  # for the reload to be served


class Route53Provider(Model):
    """An Amazon Route 53 hosted zone, written through boto3."""

    type: Literal["route53"]
    hosted_zone_id: Annotated[str, Field(pattern=r"^(/hostedzone/)?[A-Z0-9]{1,32}$")]
    endpoint_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    profile: str | None = None
    max_requests_per_second: Annotated[float, Between(0.1, 5, "max_requests_per_second")] = 5.0
    wait_insync: bool = False  # poll GetChange until INSYNC and record the propagation time
    health_checks: bool = False  # mirror our checks as Route 53 health checks (a backstop)
    insync_timeout: Seconds = 120.0
    # how a record set is written: CREATE, and DELETE of the exact values read + CREATE
    # to replace (refused when it changed since it was read), or UPSERT for both; auto:
    # UPSERT with endpoint_url (moto_server refuses a CREATE it has seen before)
    replace: Literal["auto", "delete_create", "upsert"] = "auto"
    # Route 53 health checks already attached to record sets, by the address (or CNAME
    # target) they answer with: a routing record answering only with addresses of one
    # check keeps that check attached (an adopted zone keeps its checks; `failover import`
    # fills it in). Not with `health_checks`, which attaches checks of its own.
    health_check_ids: dict[str, Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=dict)

    @model_validator(mode="after")
    def _one_kind_of_checks(self) -> Route53Provider:
        if self.health_checks and self.health_check_ids:
            raise PydanticCustomError(
                "health_checks", "health_checks (checks of our own) and health_check_ids "
                "(checks already attached) exclude each other: choose one", {})
        return self

    def upserts(self) -> bool:
        """Whether replacements are sent as UPSERT (see `replace`)."""
        return self.replace == "upsert" or (self.replace == "auto"
                                            and self.endpoint_url is not None)


class NoneProvider(Model):
    """No DNS at all: plan and status only."""

    type: Literal["none"] = "none"


Provider = Annotated[BindProvider | ZonefileProvider | Route53Provider | NoneProvider,
                     Field(discriminator="type")]


def _parse_listen(value: str) -> str:
    host, port = split_host_port(value)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _allowed_host(value: str) -> str:
    """A name the API may be reached by: an IP address or a host name, in one spelling."""
    try:
        return str(ipaddress.ip_address(value.strip().strip("[]")))
    except ValueError:
        return _host_name(value)


def split_host_port(value: str) -> tuple[str, int]:
    """`127.0.0.1:9053` or `[::1]:9053` -> (host, port). Raises ValueError."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", value.strip())
    if not m:
        raise PydanticCustomError("listen", "expected HOST:PORT or [IPv6]:PORT, got '{v}'",
                                  {"v": value})
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if not 1 <= port <= 65535:
        raise PydanticCustomError("listen", "port must be between 1 and 65535, got {p}",
                                  {"p": port})
    return host, port


def _dns_server(value: str) -> str:
    """`ADDRESS`, `ADDRESS:PORT` or `[IPv6]:PORT` of a DNS server, in one spelling."""
    text = value.strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    try:
        host, port = split_host_port(text)
    except PydanticCustomError:
        host, port = text, None  # a host name alone
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            name = _host_name(host)
        except PydanticCustomError:
            raise PydanticCustomError(
                "dns_server", "expected a host name or an IP address with an optional port "
                "(HOST, HOST:PORT, ADDRESS:PORT or [IPv6]:PORT), got '{v}'",
                {"v": value}) from None
        return name if port is None else f"{name}:{port}"
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def server_address(value: str, default_port: int) -> tuple[str, int]:
    """A `DrillSettings.servers` entry -> (address or host name, port)."""
    try:
        return str(ipaddress.ip_address(value)), default_port
    except ValueError:
        pass
    if ":" not in value:
        return value, default_port  # a host name alone
    return split_host_port(value)


class DrillSettings(Model):
    """Where `failover drill` watches the answers move: every authoritative server."""

    # default: the zone's NS set, asked of the provider (Route 53: the delegation set)
    servers: Annotated[list[Annotated[str, AfterValidator(_dns_server)]],
                       Field(min_length=1)] | None = None
    # for servers without a port: default the provider's port (bind, zonefile), else 53
    port: Port | None = None
    timeout: Seconds = 2.0  # for each query


class HistorySettings(Model):
    """How much history the state keeps: events older than `keep_days`, or beyond the
    newest `keep_events`, are dropped (hourly)."""

    keep_days: Annotated[float, Between(0.01, 3650, "keep_days", " days")] = 90.0
    keep_events: Annotated[int, Between(1000, 100_000_000, "keep_events")] = 1_000_000


def _etcd_endpoint(value: str) -> str:
    text = value.strip().rstrip("/")
    m = re.fullmatch(r"(https?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d+)", text)
    if not m or not 1 <= int(m.group(3)) <= 65535:
        raise PydanticCustomError(
            "etcd_endpoint", "expected an etcd client URL http(s)://HOST:PORT (for example "
            "http://10.0.1.5:2379), got '{v}'", {"v": value})
    return text


def _etcd_prefix(value: str) -> str:
    if not re.fullmatch(r"(/[A-Za-z0-9_.@-]+)+", value):
        raise PydanticCustomError(
            "etcd_prefix", "expected a key prefix such as /failover/prod (starts with '/', "
            "no trailing '/', letters, digits, '_', '.', '@', '-'), got '{v}'", {"v": value})
    return value


class EtcdSettings(Model):
    """The etcd cluster a fleet of controllers coordinates through."""

    endpoints: Annotated[list[Annotated[str, AfterValidator(_etcd_endpoint)]],
                         Field(min_length=1)]
    prefix: Annotated[str, AfterValidator(_etcd_prefix)] = "/failover"
    timeout: Annotated[float, Between(0.1, 10, "timeout", " s")] = 1.0  # each request
    ca_file: str | None = None  # TLS: the CA that signed the members' certificates
    cert_file: str | None = None  # TLS client certificate (with key_file)
    key_file: str | None = None
    user: str | None = None  # etcd auth (with password_env or password_file)
    password_env: EnvName | None = None
    password_file: str | None = None

    def in_clear(self) -> str | None:
        """A warning when the etcd password crosses plain http:// to a loopback member (off
        loopback that is refused by validation)."""
        if self.user and any(u.startswith("http://") for u in self.endpoints):
            return (f"controller.cluster.etcd: user {self.user!r} authenticates over "
                    "http://: its password travels unencrypted (on loopback only); use "
                    "https:// with ca_file")
        return None


def loopback_url(url: str) -> bool:
    """Whether an http(s)://HOST:PORT URL names this host (a loopback address, localhost)."""
    host = url.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _vantage_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", value):
        raise PydanticCustomError(
            "vantage", "expected a name of letters, digits, '_', '.', '-' (at most 63), "
            "such as us-east-1; got '{v}'", {"v": value})
    return value


VantageName = Annotated[str, AfterValidator(_vantage_name)]


class ClusterSettings(Model):
    """A fleet: every instance probes from its vantage, one elected leader writes DNS."""

    etcd: EtcdSettings
    vantage: VantageName | None = None  # default: host name
    # required: the fleet's vantages, the only ones whose views count (a view under any
    # other name, which whoever can write to etcd could add, is left out and named)
    vantages: Annotated[list[VantageName], Field(min_length=1)] | None = None
    lease_ttl: Annotated[int, Between(2, 60, "lease_ttl", " s")] = 3

    def not_listed(self) -> str | None:
        """Why this instance's view would not count (its vantage is not in `vantages`)."""
        me = self.vantage_name()
        if self.vantages is None or me in self.vantages:
            return None
        return (f"this instance's vantage {me!r} ("
                + ("controller.cluster.vantage" if self.vantage else "its host name")
                + ") is not in controller.cluster.vantages: the fleet would not count its "
                "view; add it there (or set vantage)")

    def vantage_name(self) -> str:
        """This instance's vantage: the configured one, or the host name."""
        if self.vantage:
            return self.vantage
        import socket

        host = socket.gethostname().split(".")[0] or "local"
        return re.sub(r"[^A-Za-z0-9_.-]", "-", host)[:63]


class ControllerSettings(Model):
    """The long-lived service: where it keeps state and where its HTTP API listens."""

    state: str = "./failover.db"
    listen: Annotated[str, AfterValidator(_parse_listen)] = "127.0.0.1:9053"
    # host names (or addresses) clients may reach the HTTP endpoint by, beyond the listen
    # address, localhost and loopback addresses: any other Host header is refused (421)
    allowed_hosts: list[Annotated[str, AfterValidator(_allowed_host)]] = []
    token_env: EnvName | None = None  # bearer token guarding state-changing API calls
    token_file: str | None = None
    # seconds between full re-readings of DNS (taken only when the SOA serial moved): how
    # long a hand edit of a managed record can stand before it is corrected
    refresh: Annotated[float, Between(1, 86400, "refresh", " s")] = 30.0
    history: HistorySettings = HistorySettings()
    # the API speaks plain HTTP: off loopback, a TLS terminator must be in front of it;
    # say so here and the warning at start goes away
    tls_terminated: bool = False
    # processes that run the health checks (0: the controller's own); unset: one per core
    # once more than 2,000 checks a second are due, which one process cannot do alone
    probe_workers: Annotated[int, Between(0, 64, "probe_workers")] | None = None
    # a fleet of controllers on etcd (docs/ha.md); absent: one process with SQLite
    cluster: ClusterSettings | None = None
    # without a fleet: the vantage this controller measures latency from (networks:)
    vantage: VantageName | None = None
    # the local address health checks connect from (a host with several addresses)
    probe_source: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None

    def exposed(self) -> str | None:
        """A warning when `listen` is reachable off this host with no TLS in front."""
        host, _ = split_host_port(self.listen)
        try:
            loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if loopback or self.tls_terminated:
            return None
        return (f"controller.listen {self.listen} is not loopback and the API speaks plain "
                "HTTP: its bearer token and /status cross the network in clear; put a TLS "
                "terminator in front and set controller.tls_terminated: true "
                "(docs/operations.md)")


class OwnershipSettings(Model):
    """Which names this controller may write: TXT markers, as ExternalDNS's registry."""

    owner_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,63}$")] = "failover"
    take_over: bool = False  # write names marked by another owner or holding foreign records
    # mark names that hold records nobody marked when they already hold what the config
    # asks for: only their markers are written, never their answers (`failover import`);
    # a name whose records differ is left alone, and the plan says what differs
    adopt: bool = False
    marker_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,63}$")] = "_failover"
    prune: bool = True  # delete names it marked that left the config (found on full reads)


class PlanSettings(Model):
    """Safety guards applied to every plan before it is written."""

    max_delete_share: Annotated[float, Between(0, 1, "max_delete_share")] = 0.3
    min_existing: Annotated[int, Between(0, None, "min_existing")] = 10


HOST_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


def _host_name(value: str) -> str:
    """A host name (letters, digits, '-', '_' per label), without the trailing dot."""
    name = value.strip().rstrip(".")
    labels = name.split(".")
    # an all-digit last label would be a mistyped IPv4 address, not a name
    if len(name) > 253 or not all(HOST_LABEL.match(x) for x in labels) or labels[-1].isdigit():
        raise PydanticCustomError("host_name", "'{v}' is not a host name", {"v": value})
    return name.lower()


HostName = Annotated[str, AfterValidator(_host_name)]
