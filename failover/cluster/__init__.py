"""A fleet of controllers on etcd: the client, the election and the shared views."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from failover.cluster.etcd import Etcd
    from failover.config import Config


def client_for(cfg: Config) -> Etcd:
    """An etcd client for the config's `controller.cluster.etcd` (its password resolved
    now). Raises SecretError when the password cannot be read."""
    from failover.cluster.etcd import Etcd
    from failover.config import resolve_secret

    cluster = cfg.controller.cluster
    assert cluster is not None
    e = cluster.etcd
    password = None
    if e.user:
        password = resolve_secret(e.password_env, e.password_file,
                                  "controller.cluster.etcd.password",
                                  cfg.path(".")).get_secret_value()
    return Etcd(e.endpoints, timeout=e.timeout,
                ca=str(cfg.path(e.ca_file)) if e.ca_file else None,
                cert=str(cfg.path(e.cert_file)) if e.cert_file else None,
                key=str(cfg.path(e.key_file)) if e.key_file else None,
                user=e.user, password=password)
