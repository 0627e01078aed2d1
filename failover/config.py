"""The configuration: pydantic models loaded from YAML, validated once, with located errors.

`load_config(path)` is the entry point. Every error names the field path
(`records[2].weights.eu-west-1`) and the file line; all errors are reported at once.
Structural checks (types, ranges, unknown fields) come from the models; checks that
look across sections (a record naming an unknown region, duplicate records) come from
`_cross_checks` and run once the structure is sound.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import ipaddress
import logging
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, cast

import dns.exception
import dns.name
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from failover.errors import ConfigError, ConfigIssue, SecretError, SecretMissing
from failover.records import RECORD_TYPES, RecordType
from failover.yamlsource import YamlProblem, YamlSource, format_path, load_yaml

T = TypeVar("T")
MIN_REQUEST_INTERVAL = 1.0  # seconds; Route 53 offers only 10 or 30
CHECK_TYPES = ("HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH", "TCP", "CALCULATED")
HTTP_TYPES = ("HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH")
TLS_TYPES = ("HTTPS", "HTTPS_STR_MATCH")
STR_MATCH_TYPES = ("HTTP_STR_MATCH", "HTTPS_STR_MATCH")
# Route 53's own AWS region names, for latency records written natively.
AWS_REGIONS = frozenset({
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "af-south-1", "ap-east-1",
    "ap-east-2", "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2",
    "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-7",
    "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ca-central-1", "ca-west-1",
    "cn-north-1", "cn-northwest-1", "eu-central-1", "eu-central-2", "eu-west-1",
    "eu-west-2", "eu-west-3", "eu-south-1", "eu-south-2", "eu-north-1", "il-central-1",
    "me-south-1", "me-central-1", "mx-central-1", "sa-east-1", "us-gov-east-1",
    "us-gov-west-1",
})
REGION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha512", "hmac-sha384", "hmac-sha224", "hmac-sha1",
                   "hmac-md5")


@dataclass(frozen=True)
class Between:
    """Annotated metadata: a range check whose message names the quantity and its unit,
    and whose bounds appear in the JSON Schema."""

    lo: float
    hi: float | None
    what: str
    unit: str = ""

    def check(self, value: float) -> float:
        if not math.isfinite(value):
            raise PydanticCustomError("finite", "{what} must be a finite number",
                                      {"what": self.what})
        if value < self.lo or (self.hi is not None and value > self.hi):
            bound = (f"between {self.lo:g} and {self.hi:g}{self.unit}" if self.hi is not None
                     else f"at least {self.lo:g}{self.unit}")
            raise PydanticCustomError("out_of_range", "{what} must be {bound}, got {value}",
                                      {"what": self.what, "bound": bound, "value": value})
        return value

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> dict[str, Any]:
        out = dict(handler(schema))
        out["minimum"] = self.lo
        if self.hi is not None:
            out["maximum"] = self.hi
        return out


def _weight_as_written(value: Any) -> Any:
    """A weight as YAML gave it: a boolean (YAML 1.1 reads yes/no/on/off so) is refused,
    and a number YAML left a string (1e3) is read as one, for the range check to name."""
    if isinstance(value, bool):
        raise PydanticCustomError(
            "weight_boolean", "weight must be a number between 0 and 255, got {value} (YAML "
            "reads yes, no, on and off as true and false: write the number)",
            {"value": str(value).lower()})
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if not (math.isfinite(number) and number.is_integer() and 0 <= number <= 255):
            raise PydanticCustomError("out_of_range", "weight must be between 0 and 255, got "
                                      "{value}", {"value": value})
        return int(number)
    return value


Weight = Annotated[int, BeforeValidator(_weight_as_written), Between(0, 255, "weight")]
Port = Annotated[int, Between(1, 65535, "port")]
Seconds = Annotated[float, Between(0.001, None, "timeout", " s")]


class Model(BaseModel):
    """Base of the config models: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


log = logging.getLogger(__name__)


def resolve_secret(env: str | None, file: str | None, what: str, base: Path) -> SecretStr:
    """Read a secret from the named environment variable or file.

    Raises SecretError naming the variable or file (never the value).
    """
    if env:
        value = os.environ.get(env)
        if value is None:
            raise SecretMissing(f"{what}: environment variable {env} is not set")
        if not value.strip():
            raise SecretError(f"{what}: environment variable {env} is blank")
        return SecretStr(value.strip())
    if file:
        path = Path(file) if Path(file).is_absolute() else base / file
        try:
            value = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not text"
            raise SecretMissing(f"{what}: cannot read secret file {path}: {why}") from None
        if not value.strip():
            raise SecretError(f"{what}: secret file {path} is empty")
        exposed = secret_file_exposed(path)
        if exposed is not None:
            log.warning("event=secret_file_exposed %s", exposed)
        return SecretStr(value.strip())
    raise SecretError(f"{what}: no secret_env or secret_file given")


def secret_file_exposed(path: Path) -> str | None:
    """A warning when a secret file can be read by its group or by others."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (f"secret file {path} is readable by {'others' if mode & 0o007 else 'its group'} "
            f"(mode {mode & 0o777:04o}): chmod 600 {path}")


MIN_TOKEN_BYTES = 16  # an API token shorter than this is refused: guessable, or a mistake


ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def _env_name(value: str) -> str:
    if not ENV_NAME.match(value):
        # never echo it: what is pasted here is often the secret itself
        raise PydanticCustomError(
            "env_name", "must name an environment variable (letters, digits and '_'); the "
            "value given is not a name (if it is the secret itself, remove it from the "
            "config and rotate it)")
    return value


EnvName = Annotated[str, AfterValidator(_env_name)]


class TsigKey(Model):
    """A TSIG key for RFC 2136 updates; the secret is referenced, never written inline."""

    name: str
    algorithm: Literal[TSIG_ALGORITHMS] = "hmac-sha256"  # type: ignore[valid-type]
    secret_env: EnvName | None = None
    secret_file: str | None = None
    # Declared only so an inline secret gets a clear error instead of "unknown field".
    secret: SecretStr | None = Field(default=None, json_schema_extra={"deprecated": True})


class BindProvider(Model):
    """Any RFC 2136 primary (BIND, Knot DNS, PowerDNS...) updated with TSIG-signed
    UPDATEs and read by AXFR; `rfc2136` and `bind` are the same provider."""

    type: Literal["rfc2136", "bind"]
    server: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: Port = 53
    tsig: TsigKey | None = None
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
    # a fleet of controllers on etcd (docs/ha.md); absent: one process with SQLite
    cluster: ClusterSettings | None = None

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
        if self.controller.cluster is not None:
            files.append(self.controller.cluster.etcd.password_file)
        return [self.path(f) for f in files if f]

    def tsig_secret(self, provider: Any = None, where: str = "provider") -> SecretStr | None:
        """A provider's TSIG secret (default: the first zone's), resolved now; None when
        no TSIG is configured.

        Raises SecretError when the variable or file is missing or not base64.
        """
        provider = provider or self.provider
        if not isinstance(provider, BindProvider) or provider.tsig is None:
            return None
        key = provider.tsig
        secret = resolve_secret(key.secret_env, key.secret_file, f"{where}.tsig", self._base_dir)
        try:
            base64.b64decode(secret.get_secret_value(), validate=True)
        except binascii.Error:
            raise SecretError(f"{where}.tsig: the TSIG secret is not valid base64") from None
        return secret


# ---------------------------------------------------------------------------- loading


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, parse and validate a config file.

    Raises ConfigError (exit code 2) listing every problem with its path and line.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError([ConfigIssue("", f"cannot read config: {exc.strerror}")], str(p)) from None
    from failover import configcache

    cached = configcache.get(raw)
    if cached is not None:
        cached._base_dir = p.resolve().parent
        return cached
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError([ConfigIssue("", f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at "
                                           f"offset {exc.start}", line)], str(p)) from None
    cfg = parse_config(text, source=str(p), base_dir=p.resolve().parent)
    configcache.put(raw, cfg)
    return cfg


def parse_config(text: str, source: str = "config", base_dir: Path | None = None) -> Config:
    """Validate config text; see `load_config`."""
    try:
        src = load_yaml(text)
    except YamlProblem as exc:
        raise ConfigError(exc.issues, source) from None
    if not isinstance(src.data, dict):
        raise ConfigError([ConfigIssue("", "the config must be a YAML mapping "
                                           "(zone, provider, checks, regions, records)", 1)],
                          source)
    if {"duration", "expect"} & src.data.keys() and not {"zone", "zones"} & src.data.keys():
        raise ConfigError([ConfigIssue("", "this is a scenario file (duration, events, "
                                           "expect), not a config: run failover simulate "
                                           "--config CONFIG --scenario THIS_FILE", 1)], source)
    try:
        cfg = Config.model_validate(src.data)
    except ValidationError as exc:
        raise ConfigError(_merge_union_issues([_pydantic_issue(e, src) for e in exc.errors()]),
                          source) from None
    issues = [ConfigIssue(format_path(p), msg, src.line_of(p)) for p, msg in _cross_checks(cfg)]
    if issues:
        raise ConfigError(issues, source)
    cfg._base_dir = base_dir or Path.cwd()
    return cfg


def _real_path(loc: tuple[str | int, ...], data: Any) -> tuple[str | int, ...]:
    """Drop pydantic's union tags from a location so it matches the YAML keys."""
    out: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            node = node[part]
        elif part == "[key]":
            continue
        elif isinstance(part, str) and out and not (isinstance(node, dict) and part == loc[-1]):
            # a union member's tag (provider 'bind', 'list[str]'), not a key in the file;
            # a missing field's name is kept: it is the last part and its parent is a mapping
            continue
        out.append(part)
    return tuple(out)


def _pydantic_issue(err: Any, src: YamlSource) -> ConfigIssue:
    loc = _real_path(tuple(err["loc"]), src.data)
    kind = err["type"]
    ctx = err.get("ctx") or {}
    msg = err["msg"]
    if kind == "extra_forbidden":
        field = str(loc[-1])
        if field == "secret":
            msg = "inline secrets are not allowed: use secret_env or secret_file"
        else:
            msg = f"unknown field '{field}'" + _suggest(field, _known_fields(loc[:-1]))
    elif kind == "missing":
        msg = "required field is missing"
    elif kind == "union_tag_invalid":
        msg = f"unknown type '{ctx.get('tag')}': expected one of {ctx.get('expected_tags')}"
        loc = (*loc, "type")
    elif kind == "union_tag_not_found":
        msg = "missing 'type' (rfc2136 (or bind), zonefile, route53 or none)"
    elif kind == "literal_error":
        msg = f"must be one of {ctx.get('expected')}, got {err.get('input')!r}"
    elif kind == "string_type" and isinstance(err.get("input"), bool):
        msg = (f"a name is expected, got the boolean {str(err['input']).lower()} (YAML reads "
               "yes, no, on and off as true and false): quote it")
    elif kind.startswith("too_short") and ctx.get("min_length") == 1:
        msg = "must not be empty"
    elif kind == "string_pattern_mismatch" and loc and loc[-1] == "hosted_zone_id":
        msg = f"{err.get('input')!r} is not a hosted zone id (like Z0123456789ABCDEFGHIJ)"
    if "secret" in format_path(loc) and kind not in ("extra_forbidden", "env_name"):
        msg = "invalid secret reference"  # never echo what might be a secret
    return ConfigIssue(format_path(loc), msg, src.line_of(loc))


def _merge_union_issues(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    """One issue per path: a value that fits no member of a union gets one message."""
    by_path: dict[str, list[ConfigIssue]] = {}
    for issue in issues:
        by_path.setdefault(issue.path, []).append(issue)
    out = []
    for group in by_path.values():
        if len(group) > 1 and all(i.message.startswith("Input should be ") for i in group):
            wants = " or ".join(i.message.removeprefix("Input should be ") for i in group)
            out.append(ConfigIssue(group[0].path, f"must be {wants}", group[0].line))
        elif any("got the boolean" in i.message for i in group):  # the one that says why
            out.extend(i for i in group if "got the boolean" in i.message)
        else:
            out.extend(group)
    return out


def _known_fields(loc: tuple[str | int, ...]) -> list[str]:
    """The field names of the model at `loc`, for "did you mean" hints."""
    model: Any = Config
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is not None:  # else a list index or dict key: same model below it
            model = _model_of(field.annotation)
        if model is None:
            return []
    return list(model.model_fields)


def _model_of(annotation: Any) -> Any:
    """The model class inside an annotation like `list[Record] | None`."""
    stack = [annotation]
    while stack:
        ann = stack.pop()
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            return ann
        stack.extend(getattr(ann, "__args__", ()))
        if getattr(ann, "__metadata__", None) is not None:
            stack.append(ann.__origin__)
    return None


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ----------------------------------------------------------------------- cross-checks

Issue = tuple[tuple[str | int, ...], str]


def _cross_checks(cfg: Config) -> Iterator[Issue]:
    yield from _check_zones(cfg)
    yield from _check_provider(cfg)
    yield from _check_templates(cfg)
    yield from _check_regions(cfg)
    yield from _check_records(cfg)


def _check_zones(cfg: Config) -> Iterator[Issue]:
    given = cfg.model_fields_set
    if cfg.zones is None:
        if "zone" not in given:
            yield (("zone",), "required field is missing (or list several under zones:)")
        return
    if "zone" in given or "provider" in given:
        field = "zone" if "zone" in given else "provider"
        yield ((field,), f"give either zone and provider (one zone) or zones (several), "
                         f"not both: move {field} into zones")
    seen: dict[str, int] = {}
    for i, z in enumerate(cfg.zones):
        if z.zone in seen:
            yield (("zones", i, "zone"), f"zone {z.zone} is also zones[{seen[z.zone]}]")
        seen.setdefault(z.zone, i)


def _check_provider(cfg: Config) -> Iterator[Issue]:
    places: list[tuple[tuple[str | int, ...], Any]] = [(("provider",), cfg.provider)]
    if cfg.zones:
        places = [(("zones", i, "provider"), z.provider) for i, z in enumerate(cfg.zones)]
    for at, prov in places:
        if isinstance(prov, BindProvider) and prov.tsig is not None:
            key = prov.tsig
            if key.secret is not None:
                yield ((*at, "tsig", "secret"),
                       "inline secrets are not allowed: use secret_env or secret_file")
            elif bool(key.secret_env) == bool(key.secret_file):
                yield ((*at, "tsig"), "give exactly one of secret_env or secret_file")
    c = cfg.controller
    if c.token_env and c.token_file:
        yield (("controller", "token_env"), "give at most one of token_env or token_file")
    if c.cluster is not None:
        e = c.cluster.etcd
        at = ("controller", "cluster", "etcd")
        if e.password_env and e.password_file:
            yield ((*at, "password_env"), "give at most one of password_env or password_file")
        if e.user and not (e.password_env or e.password_file):
            yield ((*at, "user"), "etcd auth needs password_env or password_file")
        for i, url in enumerate(e.endpoints):
            if e.user and url.startswith("http://") and not loopback_url(url):
                yield ((*at, "endpoints", i), f"{url}: with user, the etcd password would "
                       "cross the network unencrypted over http://; use https:// (with "
                       "ca_file), or an etcd member on loopback")
        if c.cluster.vantages is None:
            yield (("controller", "cluster", "vantages"), "required for a fleet: list every "
                   "instance's vantage (its vantage, or its host name), such as [us-east-1, "
                   "eu-west-1, ap-south-1]; only their views count, so a vantage added in etcd "
                   "by someone else does not vote (docs/ha.md)")
        if bool(e.cert_file) != bool(e.key_file):
            yield ((*at, "cert_file"), "give cert_file and key_file together")
        if (e.cert_file or e.ca_file) and not all(u.startswith("https") for u in e.endpoints):
            yield ((*at, "endpoints"), "TLS files are given but an endpoint is http://")
        for at_p, prov in places:
            if isinstance(prov, ZonefileProvider):
                yield (at_p, "a fleet (controller.cluster) cannot write a zone file: one "
                       "file on one host cannot be fenced against a deposed leader; use "
                       "rfc2136 (the same zone, updated by UPDATE) or route53")


def _check_templates(cfg: Config) -> Iterator[Issue]:
    for name, t in cfg.checks.items():
        at: tuple[str | int, ...] = ("checks", name)
        http = t.type in HTTP_TYPES
        if t.type in STR_MATCH_TYPES and not t.search_string:
            yield ((*at, "search_string"), f"{t.type} needs a search_string")
        if t.search_string is not None and t.type not in STR_MATCH_TYPES:
            yield ((*at, "search_string"),
                   "search_string applies only to HTTP_STR_MATCH and HTTPS_STR_MATCH checks")
        if t.resource_path is not None:
            if not http:
                yield ((*at, "resource_path"), f"resource_path does not apply to {t.type} checks")
            elif not re.fullmatch(r"/[\x21-\x7e]{0,254}", t.resource_path):
                yield ((*at, "resource_path"), "must start with '/' and be at most 255 printable "
                                               "characters without spaces")
        if t.type == "CALCULATED":
            yield from _check_calculated(cfg, name, t)
        elif t.child_checks is not None or t.health_threshold is not None:
            yield ((*at, "child_checks" if t.child_checks is not None else "health_threshold"),
                   "child_checks and health_threshold apply only to CALCULATED checks")


def _check_calculated(cfg: Config, name: str, t: CheckTemplate) -> Iterator[Issue]:
    at: tuple[str | int, ...] = ("checks", name)
    if not t.child_checks:
        yield ((*at, "child_checks"), "a CALCULATED check needs at least one child check")
        return
    for i, child in enumerate(t.child_checks):
        if child not in cfg.checks:
            yield ((*at, "child_checks", i),
                   f"no check template '{child}'" + _suggest(child, list(cfg.checks)))
    # a cycle would make health undefined
    seen: set[str] = set()
    stack = [name]
    while stack:
        cur = stack.pop()
        tmpl = cfg.checks.get(cur)
        for child in (tmpl.child_checks or []) if tmpl else []:
            if child == name:
                yield ((*at, "child_checks"), f"check '{name}' depends on itself")
                return
            if child not in seen:
                seen.add(child)
                stack.append(child)


def _check_regions(cfg: Config) -> Iterator[Issue]:
    groups: list[tuple[tuple[str | int, ...], str, list[Endpoint]]] = [
        (("regions", rname, "endpoints"), rname, region.endpoints)
        for rname, region in cfg.regions.items()]
    for pname, regions in cfg.pools.items():
        for rname, eps in regions.items():
            if rname not in cfg.regions:
                yield (("pools", pname, rname), f"unknown region '{rname}' (regions: "
                       f"{', '.join(cfg.regions)})" + _suggest(rname, list(cfg.regions)))
            groups.append((("pools", pname, rname), rname, eps))
    for base, rname, eps in groups:
        labels: dict[str, int] = {}
        for i, ep in enumerate(eps):
            at: tuple[str | int, ...] = (*base, i)
            if ep.label in labels:
                yield ((*at, "name" if ep.name else "address"),
                       f"endpoint '{ep.label}' appears twice in region {rname} "
                       f"(also endpoints[{labels[ep.label]}]); give each a distinct name")
            labels.setdefault(ep.label, i)
            if ep.check is None:
                continue
            tmpl = cfg.checks.get(ep.check)
            if tmpl is None:
                known = ", ".join(sorted(cfg.checks)) or "none defined"
                yield ((*at, "check"), f"no check template '{ep.check}' (templates: {known})"
                       + _suggest(ep.check, list(cfg.checks)))
                continue
            for t in _leaf_templates(cfg, tmpl):
                if t.type == "TCP" and t.port is None and ep.port is None:
                    yield ((*at, "port"), f"check '{ep.check}' is TCP: give a port here or "
                                          "in the template")
                    break
    for rname, region in cfg.regions.items():
        if region.aws_region is not None and region.aws_region not in AWS_REGIONS:
            yield (("regions", rname, "aws_region"),
                   f"'{region.aws_region}' is not an AWS region"
                   + _suggest(region.aws_region, sorted(AWS_REGIONS)))


def _leaf_templates(cfg: Config, tmpl: CheckTemplate) -> Iterator[CheckTemplate]:
    seen: set[int] = set()
    stack = [tmpl]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        if t.type == "CALCULATED":
            stack.extend(cfg.checks[c] for c in t.child_checks or [] if c in cfg.checks)
        else:
            yield t


_POLICY_FIELDS = {"failover": ("order", "failback_delay"), "weighted": ("weights",),
                  "latency": ("regions", "latency_hysteresis_percent", "latency_hysteresis_ms",
                              "latency_min_hold")}


def _check_records(cfg: Config) -> Iterator[Issue]:
    zones = ", ".join(z.zone for z in cfg.zone_specs)
    region_issues: dict[tuple[object, ...], list[Issue]] = {}
    seen: dict[tuple[str, str], int] = {}
    types_at: dict[str, dict[str, int]] = {}
    providers = {z.zone: z.provider.type for z in cfg.zone_specs}
    for i, rec in enumerate(cfg.records):
        at: tuple[str | int, ...] = ("records", i)
        zone = cfg.zone_of(rec.name)
        if zone is None:
            yield ((*at, "name"), f"{rec.name} is outside the zone {zones}" if not cfg.zones
                   else f"{rec.name} is in none of the zones ({zones})")
        if rec.pool is not None and rec.pool not in cfg.pools:
            known = ", ".join(cfg.pools) or "none defined"
            yield ((*at, "pool"), f"no pool '{rec.pool}' (pools: {known})"
                   + _suggest(rec.pool, list(cfg.pools)))
        bad = _reserved(cfg, rec.name) or _name_problem(rec, zone, providers.get(zone or ""))
        if bad is not None:
            yield ((*at, "name"), bad)
        if rec.policy == "latency" and providers.get(zone or "") == "route53":
            yield from _check_aws_regions(cfg, at, rec)
        key = (rec.name, rec.type)
        if key in seen:
            yield ((*at, "name"), f"duplicate record: {rec.name} {rec.type} is also records[{seen[key]}]")
        seen.setdefault(key, i)
        types_at.setdefault(rec.name, {}).setdefault(rec.type, i)
        for policy, fields in _POLICY_FIELDS.items():
            for f in fields:
                if policy != rec.policy and f in rec.model_fields_set:
                    yield ((*at, f), f"'{f}' applies only to policy {policy} "
                                     f"(this record is {rec.policy})")
        shape = (rec.type, rec.policy, rec.tiers, tuple((rec.weights or {}).items()),
                 tuple(rec.regions or ()), rec.regions is None, rec.pool,
                 tuple(sorted(rec.model_fields_set & {"order", "weights", "regions"})))
        found = region_issues.get(shape)
        if found is None:  # records alike share their findings (10,000 records, 1 s less)
            found = region_issues[shape] = [(p[2:], m) for p, m in
                                            _check_record_regions(cfg, 0, rec)]
        yield from (((*at, *p), m) for p, m in found)
    for name, types in types_at.items():
        if "CNAME" in types and len(types) > 1:
            others = ", ".join(sorted(t for t in types if t != "CNAME"))
            yield (("records", types["CNAME"], "type"),
                   f"{name} has a CNAME and also {others}: a CNAME cannot sit beside other types")


DNS_LABEL = re.compile(r"^[a-z0-9_-]{1,63}$")
HOST_NAME_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
HOST_NAME = re.compile(r"^(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+$")


def _reserved(cfg: Config, name: str) -> str | None:
    """Why a name is failover's own (a marker or the fleet's fence), or None: a record
    there would replace what tells failover which names it owns, or who may write."""
    from failover.dns.base import FENCE_LABEL

    first = name.split(".", 1)[0]
    prefix = cfg.ownership.marker_prefix
    if first == prefix:
        return (f"{name} is under the marker prefix '{prefix}': failover keeps each managed "
                "name's ownership marker there (ownership.marker_prefix); a record there "
                "would replace a marker and stop failover for its name")
    if first == FENCE_LABEL:
        return (f"{name} is the writers' fence ({FENCE_LABEL}.<zone>): failover keeps the "
                "identity of the controller allowed to write there")
    return None


def _name_problem(rec: Record, zone: str | None, provider: str | None) -> str | None:
    """Why a record's name cannot be written, or None. Every provider: letters, digits,
    '-' and '_' per label ('*' alone as the first, a wildcard), and no CNAME at a zone's
    apex. RFC 2136 servers and zone files (BIND's check-names): an A or AAAA owner is a
    host name (no '_', no '-' at either end of a label), or BIND refuses the whole
    UPDATE it arrives in."""
    if HOST_NAME.match(rec.name) and not (rec.type == "CNAME" and rec.name == zone):
        return None  # the common case, in one match
    labels = rec.name.rstrip(".").split(".")
    for j, label in enumerate(labels):
        if not (DNS_LABEL.match(label) or (label == "*" and j == 0)):
            odd = sorted({c for c in label if not (c.isalnum() and c.isascii()) and c not in "-_"})
            shown = ("an escaped character (\\032 is a space)" if "\\" in label else
                     ", ".join(repr(c) for c in odd) or "its length")
            return (f"{rec.name} is not a name failover writes: label '{label}' has {shown} "
                    "(letters, digits, '-' and '_' only)")
    if zone is None:
        return None
    if rec.type == "CNAME" and rec.name == zone:
        return (f"{rec.name} is the zone's apex: a CNAME cannot sit there (beside the SOA "
                "and NS records); use A/AAAA records, or your provider's alias record")
    if rec.type in ("A", "AAAA") and provider in ("rfc2136", "bind", "zonefile"):
        for j, label in enumerate(labels):
            if not HOST_NAME_LABEL.match(label) and not (label == "*" and j == 0):
                return (f"{rec.name} is not a host name (label '{label}'): an {rec.type} "
                        "owner takes letters, digits and inner '-' only; BIND's check-names "
                        "refuses it, and with it the whole update it arrives in")
    return None


def _check_aws_regions(cfg: Config, at: tuple[str | int, ...], rec: Record) -> Iterator[Issue]:
    """A Route 53 latency record needs an AWS region for each of its regions: without
    one the region gets no record set, and a failover away from the others would leave
    the name empty (refused by the guards: Route 53 would keep serving a dead region)."""
    for j, region in enumerate(cfg.record_regions(rec)):
        if region in cfg.regions and cfg.aws_region_of(region) is None:
            path = (*at, "regions", j) if rec.regions is not None else (*at, "policy")
            yield (path, f"region '{region}' needs aws_region for Route 53 latency records "
                         "(its name is not an AWS region)")


def _check_record_regions(cfg: Config, i: int, rec: Record) -> Iterator[Issue]:
    at: tuple[str | int, ...] = ("records", i)
    refs: list[tuple[tuple[str | int, ...], str]] = []
    if rec.policy == "failover":
        if rec.order is None:
            yield ((*at, "order"), "policy failover needs 'order': the regions, first healthy answers")
        elif not rec.order:
            yield ((*at, "order"), "order is empty: list at least one region")
        for j, tier in enumerate(rec.order or []):
            if isinstance(tier, list):
                if not tier:
                    yield ((*at, "order", j), "an empty tier: list at least one region")
                refs += [((*at, "order", j, k), r) for k, r in enumerate(tier)]
            else:
                refs.append(((*at, "order", j), tier))
    elif rec.policy == "weighted":
        if not rec.weights:
            yield ((*at, "weights"), "policy weighted needs 'weights': region: 0-255")
        refs += [((*at, "weights", r), r) for r in rec.weights or {}]
    elif rec.regions is not None:
        if not rec.regions:
            yield ((*at, "regions"), "regions is empty: list at least one region, or omit it for all")
        refs += [((*at, "regions", j), r) for j, r in enumerate(rec.regions)]
    first: dict[str, tuple[str | int, ...]] = {}
    for path, region in refs:
        if region not in cfg.regions:
            yield (path, f"unknown region '{region}' (regions: {', '.join(cfg.regions)})"
                   + _suggest(region, list(cfg.regions)))
            continue
        if region in first:
            yield (path, f"region '{region}' appears twice in this record")
            continue
        first[region] = path
        pool = rec.pool if rec.pool in cfg.pools else None
        if not any(ep.kind == rec.type for _, ep in cfg.endpoints_of(region, pool)):
            want = {"A": "an IPv4 address", "AAAA": "an IPv6 address", "CNAME": "a host name"}
            where = f"pool '{pool}' has" if pool else f"region '{region}' has"
            yield (path, f"{where} no endpoint {'in ' + region + ' ' if pool else ''}with "
                         f"{want[rec.type]} to serve in {'an' if rec.type == 'A' else 'a'} "
                         f"{rec.type} record")


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, for editors."""
    from failover.schema_docs import describe

    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "failover configuration"
    # `secret` is declared only to refuse an inline secret with a clear message: an
    # editor must not offer it
    schema["$defs"]["TsigKey"]["properties"].pop("secret", None)
    models = {name: obj for name, obj in globals().items()
              if isinstance(obj, type) and issubclass(obj, BaseModel)}
    return describe(schema, models)
