"""Answers per client network on a real named with two views, each chosen by its key
or by the client's address: reads, writes and confirmations go to each view with its
own key, and a client gets its own network's answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest

from failover.config import Config, parse_config
from failover.dns import make_adapter
from failover.dns.base import DnsRejected
from failover.localdns import LocalNamed
from failover.reconcile import plan_step, read_actual
from policies import Overrides
from tests.builders import snapshot
from tests.service_env import EUROPE_CLIENT, OTHER_CLIENT
from tests.service_env import viewed_named as start_viewed_named

EAST, WEST = "127.0.0.10", "127.0.0.20"


@pytest.fixture
def viewed_named(tmp_path: Path) -> Iterator[LocalNamed]:
    """named with the example zone in two views: europe (127.0.0.128/25) and default."""
    server = start_viewed_named(tmp_path / "named")
    try:
        yield server
    finally:
        server.stop()


def views_config(named: LocalNamed, tmp_path: Path, *, europe_secret: str | None = None,
                 extra: str = "") -> Config:
    for view, secret in named.view_keys.items():
        if view == "europe" and europe_secret is not None:
            secret = europe_secret
        (tmp_path / f"{view}.key").write_text(secret + "\n")
    text = f"""
zone: {named.dynamic_zone}
provider:
  type: rfc2136
  server: 127.0.0.1
  port: {named.port}
  views:
    europe: {{tsig: {{name: view-europe, secret_file: europe.key}}}}
    default: {{tsig: {{name: view-default, secret_file: default.key}}}}
networks:
  europe: {{cidrs: [127.0.0.128/25]}}
  default: {{}}
regions:
  us-east-1: {{endpoints: [{{address: {EAST}}}]}}
  eu-west-1: {{endpoints: [{{address: {WEST}}}]}}
records:
  - name: api.{named.dynamic_zone}
    type: A
    ttl: 5
    policy: failover
    order: [us-east-1, eu-west-1]
    networks:
      europe: {{order: [eu-west-1, us-east-1]}}
{extra}"""
    return parse_config(text, "views.yaml", base_dir=tmp_path)


def answer(named: LocalNamed, name: str, source: str) -> list[str]:
    """What a client at `source` is told (a plain query, as a resolver asks)."""
    response = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=named.port,
                             source=source, timeout=3)
    return sorted(rd.to_text() for rrset in response.answer for rd in rrset)


def write(cfg: Config, down: dict[str, float] | None = None,
          overrides: Overrides | None = None) -> None:
    adapter = make_adapter(cfg)
    assert adapter is not None
    step = plan_step(cfg, snapshot(cfg, down), overrides or Overrides(), {}, 1000.0,
                     read_actual(cfg, adapter))
    assert not step.violations and not step.blocked
    adapter.apply(step.changes, read_actual(cfg, adapter))


def test_each_network_gets_its_own_answer_and_moves_on_its_own(
        viewed_named: LocalNamed, tmp_path: Path) -> None:
    cfg = views_config(viewed_named, tmp_path)
    name = cfg.records[0].name
    write(cfg)
    assert answer(viewed_named, name, EUROPE_CLIENT) == [WEST]
    assert answer(viewed_named, name, OTHER_CLIENT) == [EAST]
    # us-east-1 fails: default moves to eu-west-1, europe stays there
    write(cfg, down={"us-east-1": 990.0})
    assert answer(viewed_named, name, OTHER_CLIENT) == [WEST]
    assert answer(viewed_named, name, EUROPE_CLIENT) == [WEST]
    # eu-west-1 fails: europe moves to us-east-1
    write(cfg, down={"eu-west-1": 990.0})
    assert answer(viewed_named, name, EUROPE_CLIENT) == [EAST]
    assert answer(viewed_named, name, OTHER_CLIENT) == [EAST]


def test_a_drain_and_a_pin_for_one_network_move_only_that_network(
        viewed_named: LocalNamed, tmp_path: Path) -> None:
    cfg = views_config(viewed_named, tmp_path)
    name = cfg.records[0].name
    write(cfg, overrides=Overrides(drained=frozenset({"eu-west-1@europe"})))
    assert answer(viewed_named, name, EUROPE_CLIENT) == [EAST]
    assert answer(viewed_named, name, OTHER_CLIENT) == [EAST]
    write(cfg, overrides=Overrides(pinned={f"{name}@default": "eu-west-1"}))
    assert answer(viewed_named, name, OTHER_CLIENT) == [WEST]
    assert answer(viewed_named, name, EUROPE_CLIENT) == [WEST]


def test_every_view_holds_its_own_marker_and_a_second_plan_is_empty(
        viewed_named: LocalNamed, tmp_path: Path) -> None:
    cfg = views_config(viewed_named, tmp_path)
    write(cfg)
    adapter = make_adapter(cfg)
    actual = read_actual(cfg, adapter)
    markers = sorted(rs.set_identifier or "" for rs in actual if rs.type == "TXT")
    assert markers == ["default", "europe"]
    again = plan_step(cfg, snapshot(cfg), Overrides(), {}, 1000.0, actual)
    assert not again.changes


def test_a_view_whose_key_is_refused_fails_alone_and_is_named(
        viewed_named: LocalNamed, tmp_path: Path) -> None:
    wrong = "c2VjcmV0IHRoYXQgbmFtZWQgZG9lcyBub3Qga25vdyEhIQ=="
    cfg = views_config(viewed_named, tmp_path, europe_secret=wrong)
    name = cfg.records[0].name
    with pytest.raises(DnsRejected, match="view europe"):
        write(cfg)
    assert answer(viewed_named, name, OTHER_CLIENT) == [EAST]  # default written all the same
    assert answer(viewed_named, name, EUROPE_CLIENT) == []
