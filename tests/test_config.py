"""Config loading: the contract and examples validate; every broken case names its field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from failover.config import config_json_schema, load_config, parse_config
from failover.errors import ConfigError, SecretError
from tests.builders import EXAMPLES, SHARED_CONTRACT

CONTRACT_TEXT = (EXAMPLES / "contract.yaml").read_text()


def errors_of(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="c.yaml")
    return [(i.path, i.line, i.message) for i in info.value.issues]


def broken(old: str, new: str) -> str:
    assert old in CONTRACT_TEXT, old
    return CONTRACT_TEXT.replace(old, new, 1)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_validates(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.records and cfg.regions


def test_shared_contract_validates_and_example_is_its_copy() -> None:
    if not SHARED_CONTRACT.exists():
        pytest.skip("the shared contract sits beside the repository only in development")
    cfg = load_config(SHARED_CONTRACT)
    assert [r.name for r in cfg.records] == ["api.example.test.", "www.example.test.",
                                             "app.example.test."]
    assert SHARED_CONTRACT.read_text() == CONTRACT_TEXT


def test_contract_fields_follow_route53_defaults() -> None:
    cfg = parse_config(CONTRACT_TEXT)
    web = cfg.checks["web"]
    assert (web.request_interval, web.failure_threshold) == (1, 3)
    assert web.effective_connect_timeout == 4.0 and web.response_timeout == 2.0
    assert web.effective_port == 8080 and not web.inverted and not web.disabled
    assert cfg.records[1].weights == {"us-east-1": 70, "eu-west-1": 30}
    assert cfg.controller.listen == "127.0.0.1:9053"


# Each case: (what the issue lists, the edit, the field path expected, a word of the message)
BROKEN = [
    ("unknown region", "order: [us-east-1, eu-west-1]", "order: [us-east-1, eu-west-9]",
     "records[0].order[1]", "unknown region 'eu-west-9'"),
    ("weight above 255", "eu-west-1: 30}", "eu-west-1: 300}",
     "records[1].weights.eu-west-1", "between 0 and 255"),
    ("negative weight", "eu-west-1: 30}", "eu-west-1: -1}",
     "records[1].weights.eu-west-1", "between 0 and 255"),
    ("failure_threshold 11", "failure_threshold: 3", "failure_threshold: 11",
     "checks.web.failure_threshold", "between 1 and 10"),
    ("failure_threshold 0", "failure_threshold: 3", "failure_threshold: 0",
     "checks.web.failure_threshold", "between 1 and 10"),
    ("interval under 1 s", "request_interval: 1 ", "request_interval: 0.5 ",
     "checks.web.request_interval", "between 1 and 3600 s"),
    ("name outside the zone", "name: app.example.test.", "name: app.example.org.",
     "records[2].name", "outside the zone"),
    ("duplicate record", "name: app.example.test.", "name: api.example.test.",
     "records[2].name", "duplicate record"),
    ("CNAME beside other types", "name: app.example.test.\n    type: A",
     "name: api.example.test.\n    type: CNAME", "records[2].type", "CNAME cannot sit beside"),
    ("empty order", "order: [us-east-1, eu-west-1]", "order: []",
     "records[0].order", "order is empty"),
    ("missing check template", "check: web\n  eu-west-1", "check: webb\n  eu-west-1",
     "regions.us-east-1.endpoints[0].check", "no check template 'webb'"),
    ("unknown field", "resource_path: /health", "resource_pth: /health",
     "checks.web.resource_pth", "did you mean 'resource_path'"),
    ("unknown provider type", "type: bind ", "type: bindd ", "provider.type", "unknown type"),
    ("port out of range", "port: 15353", "port: 99999", "provider.port", "between 1 and 65535"),
    ("unknown check type", "type: HTTP ", "type: HTTP2 ", "checks.web.type", "must be one of"),
    ("unknown policy", "policy: latency", "policy: geo", "records[2].policy", "must be one of"),
    ("field of another policy", "policy: latency", "policy: latency\n    order: [us-east-1]",
     "records[2].order", "applies only to policy failover"),
    ("failover without order", "    order: [us-east-1, eu-west-1]        # first healthy tier answers\n",
     "", "records[0].order", "needs 'order'"),
    ("bad listen", "listen: 127.0.0.1:9053", "listen: localhost", "controller.listen",
     "HOST:PORT"),
    ("drill server not a name", "listen: 127.0.0.1:9053",
     "listen: 127.0.0.1:9053\ndrill:\n  servers: [127.0.0.1, 'ns1 example:53']",
     "drill.servers[1]", "expected a host name or an IP address"),
    ("bad address", "address: 127.0.2.1", "address: 127.0.2.1/24",
     "regions.eu-west-1.endpoints[0].address", "neither an IP address nor a host name"),
    ("wrong address family", "address: 127.0.2.1", "address: '2001:db8::1'",
     "records[0].order[1]", "no endpoint with an IPv4 address"),
    ("duplicate yaml key", "    ttl: 30\n    policy: latency",
     "    ttl: 30\n    ttl: 40\n    policy: latency", "records[2].ttl", "duplicate key"),
    ("missing zone", "zone: example.test.\n", "", "zone", "required field is missing"),
    ("path with a space", "resource_path: /health", "resource_path: /health x",
     "checks.web.resource_path", "without spaces"),
    ("bad fqdn", "resource_path: /health", "resource_path: /health\n    fqdn: bad name",
     "checks.web.fqdn", "not a host name"),
    ("region in a tier twice", "order: [us-east-1, eu-west-1]",
     "order: [us-east-1, [eu-west-1, us-east-1]]", "records[0].order[1][1]", "appears twice"),
]


@pytest.mark.parametrize("case,old,new,path,words", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_config_names_the_field_and_line(case: str, old: str, new: str, path: str,
                                                words: str) -> None:
    text = broken(old, new)
    found = errors_of(text)
    match = [f for f in found if f[0] == path]
    assert match, f"{case}: expected an error at {path}, got {found}"
    _, line, message = match[0]
    assert words in message
    assert line is not None
    # the line named is where the field (or its nearest parent) is written
    lines = text.splitlines()
    last = path.replace("]", "").replace("[", ".").split(".")[-1]
    assert last in lines[line - 1] or not last.isidentifier() or case in (
        "missing zone", "failover without order", "wrong address family", "region in a tier twice",
        "unknown region"), (case, line, lines[line - 1])


def test_all_problems_are_reported_at_once() -> None:
    text = broken("failure_threshold: 3", "failure_threshold: 0")
    text = text.replace("eu-west-1: 30}", "eu-west-1: 256}")
    paths = [p for p, _, _ in errors_of(text)]
    assert "checks.web.failure_threshold" in paths
    assert "records[1].weights.eu-west-1" in paths


def test_invalid_yaml_names_the_line() -> None:
    [(_, line, message)] = errors_of("zone: example.test.\nrecords: [\n  - a: b\n")
    assert "invalid YAML" in message and line is not None


def test_inline_secret_is_refused_and_never_echoed() -> None:
    text = broken("secret_env: FAILOVER_TSIG_SECRET", "secret: c2VjcmV0LXZhbHVlCg==")
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert "c2VjcmV0LXZhbHVlCg==" not in str(info.value)
    assert "inline secrets are not allowed" in str(info.value)


def test_tsig_secret_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse_config(CONTRACT_TEXT, base_dir=tmp_path)
    monkeypatch.delenv("FAILOVER_TSIG_SECRET", raising=False)
    with pytest.raises(SecretError, match="FAILOVER_TSIG_SECRET is not set"):
        cfg.tsig_secret()
    monkeypatch.setenv("FAILOVER_TSIG_SECRET", "c2VjcmV0\n")
    secret = cfg.tsig_secret()
    assert secret is not None and secret.get_secret_value() == "c2VjcmV0"
    assert "c2VjcmV0" not in repr(secret) and "c2VjcmV0" not in str(cfg.provider)

    (tmp_path / "key").write_text("bm90IGJhc2U2NCE=\n")
    text = CONTRACT_TEXT.replace("secret_env: FAILOVER_TSIG_SECRET", "secret_file: key")
    cfg = parse_config(text, base_dir=tmp_path)
    assert cfg.tsig_secret().get_secret_value() == "bm90IGJhc2U2NCE="  # type: ignore[union-attr]
    (tmp_path / "key").write_text("not base64!")
    with pytest.raises(SecretError, match="not valid base64"):
        cfg.tsig_secret()


def test_tsig_needs_exactly_one_secret_source() -> None:
    text = broken("secret_env: FAILOVER_TSIG_SECRET",
                  "secret_env: FAILOVER_TSIG_SECRET\n    secret_file: ./k")
    assert any(p == "provider.tsig" and "exactly one" in m for p, _, m in errors_of(text))


def test_relative_paths_resolve_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "f.yaml"
    path.parent.mkdir()
    path.write_text(CONTRACT_TEXT)
    cfg = load_config(path)
    assert cfg.path(cfg.controller.state) == (path.parent / "failover.db").resolve()


def test_calculated_checks_are_cross_checked() -> None:
    text = broken("checks:", "checks:\n  both:\n    type: CALCULATED\n"
                             "    child_checks: [web, nope, both]\n    health_threshold: 1")
    found = errors_of(text)
    assert any(p == "checks.both.child_checks[1]" and "'nope'" in m for p, _, m in found)
    assert any(p == "checks.both.child_checks" and "itself" in m for p, _, m in found)


def test_str_match_needs_search_string_and_tcp_needs_port() -> None:
    text = broken("type: HTTP ", "type: HTTP_STR_MATCH ")
    assert any(p == "checks.web.search_string" for p, _, _ in errors_of(text))
    text = broken("    port: 8080\n    resource_path: /health\n", "")
    text = text.replace("type: HTTP ", "type: TCP ")
    assert any(p == "regions.us-east-1.endpoints[0].port" for p, _, _ in errors_of(text))


def test_names_are_normalized_like_route53() -> None:
    cfg = parse_config(broken("name: api.example.test.", "name: API.Example.Test"))
    assert cfg.records[0].name == "api.example.test."


def test_json_schema_describes_the_config() -> None:
    schema = config_json_schema()
    text = json.dumps(schema)
    assert "failure_threshold" in text and "weights" in text
    props = schema["$defs"]["CheckTemplate"]["properties"]
    assert props["failure_threshold"]["maximum"] == 10
    # every field explains itself in an editor; the inline secret it refuses is not offered
    undescribed = [f"{name}.{field}" for name, node in [("Config", schema),
                                                        *schema["$defs"].items()]
                   for field, prop in node.get("properties", {}).items()
                   if not prop.get("description")]
    assert undescribed == []
    assert "secret" not in schema["$defs"]["TsigKey"]["properties"]
    assert "consecutive" in props["failure_threshold"]["description"].lower()


ZONES = (EXAMPLES / "zones-and-pools.yaml").read_text()


def test_records_go_to_the_longest_zone_and_pools_give_their_endpoints() -> None:
    cfg = parse_config(ZONES)
    assert [z.zone for z in cfg.zone_specs] == ["example.test.", "billing.example.test."]
    assert cfg.zone_of("api.billing.example.test.") == "billing.example.test."
    assert cfg.zone_of("pay.example.test.") == "example.test."
    assert cfg.zone == "example.test."  # the one-zone field names the first zone
    assert [eid for eid, _ in cfg.endpoints_of("us-east-1", "billing")] == [
        "us-east-1/billing/127.0.1.2", "us-east-1/billing/127.0.1.3"]
    assert len(cfg.all_endpoints()) == 5


@pytest.mark.parametrize(("old", "new", "path", "words"), [
    ("name: pay.example.test.", "name: pay.example.org.", "records[2].name",
     "in none of the zones (example.test., billing.example.test.)"),
    ("pool: billing}\n  - {name: pay", "pool: biling}\n  - {name: pay", "records[1].pool",
     "no pool 'biling' (pools: billing) (did you mean 'billing'?)"),
    ("    eu-west-1: [{address: 127.0.2.2, check: web}]",
     "    eu-west-9: [{address: 127.0.2.2, check: web}]", "pools.billing.eu-west-9",
     "unknown region 'eu-west-9'"),
    ("    eu-west-1: [{address: 127.0.2.2, check: web}]",
     "    eu-west-1: [{address: 127.0.2.2, check: webb}]", "pools.billing.eu-west-1[0].check",
     "no check template 'webb'"),
    ("    eu-west-1: [{address: 127.0.2.2, check: web}]",
     "    eu-west-1: [{address: '::1', check: web}]", "records[1].order[1]",
     "pool 'billing' has no endpoint in eu-west-1 with an IPv4 address"),
    ("  - zone: billing.example.test.", "  - zone: example.test.", "zones[1].zone",
     "zone example.test. is also zones[0]"),
    ("zones:\n", "zone: example.test.\nzones:\n", "zone", "not both"),
    ("    eu-west-1: [{address: 127.0.2.2, check: web}]", "    eu-west-1: []",
     "pools.billing.eu-west-1", "must not be empty"),
])
def test_zones_and_pools_errors_name_the_field(old: str, new: str, path: str, words: str) -> None:
    assert old in ZONES, old
    found = errors_of(ZONES.replace(old, new, 1))
    assert any(p == path and words in m for p, _, m in found), found


def test_a_config_needs_a_zone() -> None:
    found = errors_of(CONTRACT_TEXT.replace("zone: example.test.\n", "", 1))
    assert any(p == "zone" and "required" in m for p, _, m in found), found


@pytest.mark.parametrize(("old", "new", "path", "words"), [
    ("request_interval: 1 ", "request_interval: .nan ", "checks.web.request_interval",
     "finite number"),
    ("request_interval: 1 ", "request_interval: .inf ", "checks.web.request_interval",
     "finite number"),
    ("zone: example.test.\n", "zone: example.test.\nplan: {max_delete_share: .nan}\n",
     "plan.max_delete_share", "finite number"),
    ("  - name: api.example.test.", "  - name: api_v2.example.test.", "records[0].name",
     "not a host name (label 'api_v2')"),
    ("  - name: api.example.test.", "  - name: -lead.example.test.", "records[0].name",
     "BIND's check-names refuses it"),
    ("  - name: api.example.test.", "  - name: a b.example.test.", "records[0].name",
     "is not a name failover writes"),
])
def test_hostile_values_are_refused_by_name(old: str, new: str, path: str, words: str) -> None:
    found = errors_of(broken(old, new))
    assert any(p == path and words in m for p, _, m in found), found


def test_a_cname_at_the_apex_is_refused() -> None:
    text = CONTRACT_TEXT + """  - name: example.test.
    type: CNAME
    policy: failover
    order: [us-east-1, eu-west-1]
"""
    found = errors_of(text)
    assert any(p == "records[3].name" and "zone's apex" in m for p, _, m in found), found


@pytest.mark.parametrize(("name", "prefix", "words"), [
    ("_failover.api.example.test.", "", "is under the marker prefix '_failover'"),
    ("_owned.api.example.test.", "ownership: {marker_prefix: _owned}\n",
     "is under the marker prefix '_owned'"),
    ("_failover-leader.example.test.", "", "is the writers' fence"),
])
def test_names_failover_keeps_for_itself_are_refused(name: str, prefix: str, words: str) -> None:
    text = prefix + CONTRACT_TEXT + f"""  - name: {name}
    type: CNAME
    policy: failover
    order: [us-east-1, eu-west-1]
"""
    found = errors_of(text)
    assert any(p == "records[3].name" and words in m for p, _, m in found), found


def test_a_name_beside_the_marker_prefix_is_not_reserved() -> None:
    found = errors_of(CONTRACT_TEXT + """  - name: _failover-x.example.test.
    type: CNAME
    policy: failover
    order: [us-east-1, eu-west-1]
""")
    assert found and not any("marker prefix" in m or "fence" in m for _, _, m in found), found


def test_a_secret_pasted_for_its_variable_name_is_not_echoed() -> None:
    secret = "c2VjcmV0LXRoYXQtc2hvdWxkLW5ldmVyLWJlLXByaW50ZWQ="
    with pytest.raises(ConfigError) as info:
        parse_config(broken("secret_env: FAILOVER_TSIG_SECRET", f"secret_env: {secret}"))
    assert "must name an environment variable" in str(info.value)
    assert secret not in str(info.value) and secret[:12] not in str(info.value)


@pytest.mark.parametrize(("text", "words"), [
    ("a: &a [*a]\n", "an alias refers to a value that contains it"),
    ("zone: " + "[" * 1000 + "]" * 1000 + "\n", "nested deeper than 64 levels"),
    # deep enough to overflow the YAML composer's C stack (a crash) if it got that far
    ("zone: " + "[" * 200_000 + "]" * 200_000 + "\n", "nested deeper than 64 levels"),
    ("zone:\n" + "- " * 200_000 + "x\n", "nested deeper than 64 levels"),
    ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
     + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n"
               for i in range(8)), "refused (an alias bomb?)"),
])
def test_yaml_that_would_run_away_is_refused(text: str, words: str) -> None:
    found = errors_of(text)
    assert any(words in m for _, _, m in found), found


def test_a_config_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(CONTRACT_TEXT.encode().replace(b"zone: example.test.",
                                                    b"zone: example.test. # caf\xe9"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    issue = info.value.issues[0]
    assert "not UTF-8 text: byte 0xe9" in issue.message and issue.line == 4


def test_ten_thousand_records_validate_with_the_c_loader() -> None:
    import yaml

    assert hasattr(yaml, "CSafeLoader")  # libyaml: without it, 10,000 records take 8 s
    text = CONTRACT_TEXT + "".join(
        f"  - {{name: r{i}.example.test., type: A, policy: failover, "
        f"order: [us-east-1, eu-west-1]}}\n" for i in range(10_000))
    assert len(parse_config(text).records) == 10_003


def test_a_large_config_is_read_from_the_cache_until_it_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from failover.config import cache as configcache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("FAILOVER_NO_CONFIG_CACHE", raising=False)
    records = "".join(f"  - {{name: r{i}.example.test., type: A, policy: failover, "
                      f"order: [us-east-1, eu-west-1]}}\n" for i in range(3000))
    path = tmp_path / "big.yaml"
    path.write_text(CONTRACT_TEXT + records)
    assert len(path.read_bytes()) >= configcache.MIN_SIZE
    first = load_config(path)
    [entry] = (tmp_path / "cache" / "failover").glob("*.pickle")
    assert oct(entry.stat().st_mode & 0o777) == "0o600"
    # the second load is the cache's: the YAML is not read again
    import failover.config.loading

    def unread(*args: object, **kwargs: object) -> None:
        raise AssertionError("the config was parsed again")

    with monkeypatch.context() as m:
        m.setattr(failover.config.loading, "parse_config", unread)
        again = load_config(path)
    assert again.records == first.records and again.path("x") == tmp_path / "x"
    # an edit misses; a broken edit is still reported
    path.write_text(CONTRACT_TEXT + records.replace("r2999.", "r3000."))
    assert load_config(path).records[-1].name == "r3000.example.test."
    path.write_text(CONTRACT_TEXT.replace("failure_threshold: 3", "failure_threshold: 99")
                    + records)
    with pytest.raises(ConfigError):
        load_config(path)
    # an entry others may write is never loaded (a pickle runs code)
    path.write_text(CONTRACT_TEXT + records)
    os.chmod(entry, 0o666)
    assert configcache.get(path.read_bytes()) is None


LISTEN = "  listen: 127.0.0.1:9053        # /healthz /readyz /status /metrics\n"


def fleet(etcd: str, vantages: str | None = "[us-east-1, eu-west-1]",
          vantage: str = "us-east-1") -> str:
    return broken(LISTEN, LISTEN + f"  cluster:\n    etcd: {etcd}\n    vantage: {vantage}\n"
                  + (f"    vantages: {vantages}\n" if vantages is not None else ""))


def test_a_fleet_names_the_vantages_whose_views_count() -> None:
    etcd = "{endpoints: [http://10.0.1.5:2379]}"
    [(path, _, message)] = errors_of(fleet(etcd, vantages=None))
    assert path == "controller.cluster.vantages" and "required for a fleet" in message
    assert errors_of(fleet(etcd, vantages="[]"))[0][0] == "controller.cluster.vantages"
    assert errors_of(fleet(etcd, vantages="[us-east-1, 'bad name']"))[0][0] == \
        "controller.cluster.vantages[1]"
    cluster = parse_config(fleet(etcd)).controller.cluster
    assert cluster is not None and cluster.vantages == ["us-east-1", "eu-west-1"]
    assert cluster.not_listed() is None
    # an instance whose own vantage is not listed: the others would not count it
    stray = parse_config(fleet(etcd, vantage="ap-south-1")).controller.cluster
    assert stray is not None and "'ap-south-1'" in (stray.not_listed() or "")


@pytest.mark.parametrize("url", ["http://10.0.1.5:2379", "http://etcd.example:2379",
                                 "http://[2001:db8::1]:2379"])
def test_an_etcd_password_over_plain_http_off_loopback_is_refused(url: str) -> None:
    issues = errors_of(fleet(f"{{endpoints: [https://127.0.0.1:2379, '{url}'], user: failover, "
                             "password_env: ETCD_PASSWORD}"))
    assert [(p, "unencrypted" in m) for p, _, m in issues] == [
        ("controller.cluster.etcd.endpoints[1]", True)], issues


@pytest.mark.parametrize("url", ["http://127.0.0.1:2379", "http://localhost:2379",
                                 "http://[::1]:2379"])
def test_an_etcd_password_over_loopback_http_is_taken_with_a_warning(url: str) -> None:
    cfg = parse_config(fleet(f"{{endpoints: ['{url}'], user: failover, "
                             "password_env: ETCD_PASSWORD}"))
    assert cfg.controller.cluster is not None
    assert "unencrypted" in (cfg.controller.cluster.etcd.in_clear() or "")
    https = parse_config(fleet("{endpoints: [https://10.0.1.5:2379], user: failover, "
                               "password_env: ETCD_PASSWORD}"))
    assert https.controller.cluster is not None and https.controller.cluster.etcd.in_clear() is None


def test_yaml_booleans_where_a_name_or_a_number_is_expected_are_refused_with_the_fix() -> None:
    # a region named `no` is the boolean false to YAML 1.1: refused, and how to write it
    text = CONTRACT_TEXT.replace("eu-west-1", "no")
    found = errors_of(text)
    assert ("regions", 40, "key no is read by YAML as the boolean false: quote it ('no')") \
        in found, found
    quoted = text.replace("  no:", "  'no':").replace("{us-east-1: 70, no: 30}",
                                                      "{us-east-1: 70, 'no': 30}")
    assert errors_of(quoted) == [
        ("records[0].order[1]", 50, "a name is expected, got the boolean false (YAML reads "
                                    "yes, no, on and off as true and false): quote it"),
        ("records[2].regions[1]", 60, "a name is expected, got the boolean false (YAML reads "
                                      "yes, no, on and off as true and false): quote it")]
    cfg = parse_config(quoted.replace(", no]", ", 'no']"))
    assert list(cfg.regions) == ["us-east-1", "no"]
    # a weight of `yes` is not 1, and 1e3 (a string to YAML 1.1) is named as written
    assert errors_of(broken("eu-west-1: 30}", "eu-west-1: yes}")) == [
        ("records[1].weights.eu-west-1", 55, "weight must be a number between 0 and 255, got "
         "true (YAML reads yes, no, on and off as true and false: write the number)")]
    assert errors_of(broken("eu-west-1: 30}", "eu-west-1: 1e3}")) == [
        ("records[1].weights.eu-west-1", 55, "weight must be between 0 and 255, got 1e3")]


def test_a_key_after_a_merge_key_overrides_the_merged_one() -> None:
    text = """zone: example.test.
checks:
  slow: &slow {type: HTTP, port: 8080, request_interval: 10, failure_threshold: 3}
  fast: {<<: *slow, request_interval: 1}
  other_port: &other {<<: *slow, port: 9090}
  again: *other
regions:
  a: {endpoints: [{address: 127.0.1.1, check: fast}]}
records:
  - {name: api.example.test., type: A, policy: failover, order: [a]}
"""
    checks = parse_config(text).checks
    assert (checks["fast"].request_interval, checks["fast"].port) == (1, 8080)
    assert (checks["other_port"].port, checks["again"].port) == (9090, 9090)
    assert checks["again"].request_interval == 10
    # a key written twice in the mapping itself is still refused
    [(path, line, message)] = errors_of(text.replace("request_interval: 1}",
                                                     "request_interval: 1, request_interval: 2}"))
    assert (path, line) == ("checks.fast.request_interval", 4) and "duplicate key" in message
