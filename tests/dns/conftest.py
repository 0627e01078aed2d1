from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from failover.config import BindProvider, TsigKey, ZonefileProvider
from failover.dns.bind import BindAdapter
from failover.dns.zonefile import ZonefileAdapter
from failover.localdns import LocalNamed


def bind_adapter(named: LocalNamed, secret: str | None = None, tsig: bool = True,
                 transport: str = "udp") -> BindAdapter:
    prov = BindProvider(type="bind", server="127.0.0.1", port=named.port, transport=transport,
                        tsig=TsigKey(name=named.tsig_name, secret_env="UNUSED") if tsig else None)
    return BindAdapter(named.dynamic_zone, prov, SecretStr(secret or named.tsig_secret))


def zonefile_adapter(named: LocalNamed, zone: str | None = None, path: Path | None = None,
                     **fields: object) -> ZonefileAdapter:
    zone = zone or named.file_zone
    path = path or named.file_zone_path
    prov = ZonefileProvider(type="zonefile", path=str(path), rndc=" ".join(named.rndc_command),
                            port=named.port, **fields)  # type: ignore[arg-type]
    return ZonefileAdapter(zone, prov, path)
