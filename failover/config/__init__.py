"""The configuration: pydantic models loaded from YAML, validated once, with located errors.

`load_config(path)` is the entry point; every error names the field path and the line.
The package, by what each module holds:

- `fields`: field types with their ranges, the base model, secrets by reference.
- `settings`: DNS providers, the controller and its fleet, ownership, plan guards.
- `models`: checks, endpoints, regions, records, zones, and `Config`, the whole file.
- `loading`: YAML with located errors, pydantic's errors in the user's words.
- `crosschecks`: checks across sections, once the structure is sound.
- `cache`: validated large configs kept between CLI runs.
- `schema`, `descriptions`: the JSON Schema for editors, with a sentence per field.
"""

from __future__ import annotations

from failover.config.fields import (
    AWS_REGIONS,
    CHECK_TYPES,
    HTTP_TYPES,
    MIN_REQUEST_INTERVAL,
    MIN_TOKEN_BYTES,
    STR_MATCH_TYPES,
    TLS_TYPES,
    TSIG_ALGORITHMS,
    Between,
    EnvName,
    Model,
    Port,
    Seconds,
    Weight,
    resolve_secret,
    secret_file_exposed,
)
from failover.config.loading import load_config, parse_config
from failover.config.models import (
    CheckTemplate,
    Config,
    Endpoint,
    PoolName,
    Record,
    Region,
    Tier,
    ZoneSpec,
)
from failover.config.networks import (
    DEFAULT_NETWORK,
    Network,
    RecordNetwork,
    Route53Location,
    network_notes,
)
from failover.config.schema import config_json_schema
from failover.config.settings import (
    BindProvider,
    ClusterSettings,
    ControllerSettings,
    DrillSettings,
    EtcdSettings,
    HistorySettings,
    HostName,
    NoneProvider,
    OwnershipSettings,
    PlanSettings,
    Provider,
    Route53Provider,
    TsigKey,
    VantageName,
    ViewSpec,
    ZonefileProvider,
    loopback_url,
    server_address,
    split_host_port,
)

__all__ = [
    "AWS_REGIONS",
    "CHECK_TYPES",
    "DEFAULT_NETWORK",
    "HTTP_TYPES",
    "MIN_REQUEST_INTERVAL",
    "MIN_TOKEN_BYTES",
    "STR_MATCH_TYPES",
    "TLS_TYPES",
    "TSIG_ALGORITHMS",
    "Between",
    "BindProvider",
    "CheckTemplate",
    "ClusterSettings",
    "Config",
    "ControllerSettings",
    "DrillSettings",
    "Endpoint",
    "EnvName",
    "EtcdSettings",
    "HistorySettings",
    "HostName",
    "Model",
    "Network",
    "NoneProvider",
    "OwnershipSettings",
    "PlanSettings",
    "PoolName",
    "Port",
    "Provider",
    "Record",
    "RecordNetwork",
    "Region",
    "Route53Location",
    "Route53Provider",
    "Seconds",
    "Tier",
    "TsigKey",
    "VantageName",
    "ViewSpec",
    "Weight",
    "ZoneSpec",
    "ZonefileProvider",
    "config_json_schema",
    "load_config",
    "loopback_url",
    "network_notes",
    "parse_config",
    "resolve_secret",
    "secret_file_exposed",
    "server_address",
    "split_host_port",
]
