"""Loading a config: YAML with located errors, pydantic's errors in the user's words.

`load_config(path)` is the entry point. Every error names the field path
(`records[2].weights.eu-west-1`) and the file line; all errors are reported at once.
A large config that validated before is read from the cache (failover.config.cache).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from failover.config.crosschecks import cross_checks, suggest
from failover.config.models import Config
from failover.errors import ConfigError, ConfigIssue
from failover.yamlsource import YamlProblem, YamlSource, format_path, load_yaml


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, parse and validate a config file.

    Raises ConfigError (exit code 2) listing every problem with its path and line.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError([ConfigIssue("", f"cannot read config: {exc.strerror}")], str(p)) from None
    from failover.config import cache  # pickle and hashlib: only for a file to load

    cached = cache.get(raw)
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
    cache.put(raw, cfg)
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
    issues = [ConfigIssue(format_path(p), msg, src.line_of(p)) for p, msg in cross_checks(cfg)]
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
            msg = f"unknown field '{field}'" + suggest(field, _known_fields(loc[:-1]))
    elif kind == "missing":
        msg = "required field is missing"
    elif kind == "union_tag_invalid":
        msg = f"unknown type '{ctx.get('tag')}': expected one of {ctx.get('expected_tags')}"
        loc = (*loc, "type")
    elif kind == "union_tag_not_found":
        msg = ("missing 'type' (slack, pagerduty or webhook)" if loc and loc[0] == "notify"
               else "missing 'type' (rfc2136 (or bind), zonefile, route53 or none)")
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
