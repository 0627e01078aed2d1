"""YAML loading that remembers where each value came from, for errors that name a line."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from failover.errors import ConfigIssue

Path = tuple[str | int, ...]


@dataclass
class YamlSource:
    """Parsed YAML data plus the 1-based line of every mapping key and sequence item."""

    data: Any
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


def format_path(path: Path) -> str:
    """`('records', 2, 'weights', 'eu-west-1')` -> `records[2].weights.eu-west-1`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def load_yaml(text: str) -> YamlSource:
    """Parse one YAML document with the safe loader, rejecting duplicate keys.

    Raises ConfigError-ready issues as a list via `YamlProblem`.
    """
    _check_text(text)
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise YamlProblem([_yaml_issue(exc)]) from None
    if node is None:
        return YamlSource(data=None)
    if "&" in text:  # without anchors there are no aliases: only depth to bound
        _check_shape(node)
    src = YamlSource(data=None)
    problems: list[ConfigIssue] = []
    constructor = yaml.SafeLoader("")
    try:
        src.data = _build(node, (), src.lines, problems, constructor, {})
    except yaml.YAMLError as exc:
        raise YamlProblem([_yaml_issue(exc)]) from None
    except RecursionError:
        raise YamlProblem([ConfigIssue("", f"nested deeper than {MAX_DEPTH} levels",
                                       node.start_mark.line + 1)]) from None
    if problems:
        raise YamlProblem(problems)
    src.lines.setdefault((), node.start_mark.line + 1)
    return src


MAX_DEPTH = 64  # nesting levels: a config needs about six
MAX_EXPANSION = 100_000  # values aliases may add beyond 20 per value written


MAX_TEXT = 64 * 1024 * 1024  # bytes of config: 50,000 records are about 5 MB
MAX_INDENT = 1000  # leading spaces on a line
_COMPACT = re.compile(rf"(?:[-?][ \t]+){{{MAX_DEPTH + 1},}}")
_INDENT = re.compile(rf"^ {{{MAX_INDENT},}}", re.MULTILINE)
_BRACKETS = re.compile(r"[^\[\]{}]+")


def _check_text(text: str) -> None:
    """Bound the nesting before the YAML composer sees the text: it recurses once per
    level in C, and a few hundred kilobytes of '[' would overflow its stack (a crash,
    not an error). Raises YamlProblem."""
    def refuse(message: str, at: int) -> None:
        raise YamlProblem([ConfigIssue("", message, text.count("\n", 0, at) + 1)])

    if len(text) > MAX_TEXT:
        refuse(f"the config is {len(text)} characters; at most {MAX_TEXT}", 0)
    depth = 0
    for i, c in enumerate(_BRACKETS.sub("", text)):
        depth += 1 if c in "[{" else -1
        if depth > MAX_DEPTH:
            # where: the (MAX_DEPTH+1)th unclosed bracket, counted again in the text
            refuse(f"nested deeper than {MAX_DEPTH} levels", _nth_bracket(text, i))
    found = _COMPACT.search(text) or _INDENT.search(text)
    if found is not None:
        refuse(f"nested deeper than {MAX_DEPTH} levels" if found.re is _COMPACT else
               f"indented {MAX_INDENT} spaces or more", found.start())


def _nth_bracket(text: str, n: int) -> int:
    seen = -1
    for i, c in enumerate(text):
        if c in "[]{}":
            seen += 1
            if seen == n:
                return i
    return 0


def _check_shape(root: yaml.Node) -> None:
    """Refuse what would make building the data run away, before building it: nesting
    deeper than MAX_DEPTH, an alias that contains itself, and aliases that expand to far
    more values than the text holds (a "billion laughs" bomb). Raises YamlProblem."""
    size: dict[int, int] = {}  # node id -> values it expands to
    distinct = 0
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    active: set[int] = set()
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            continue
        if key in size:
            continue
        line = node.start_mark.line + 1
        if key in active:
            raise YamlProblem([ConfigIssue("", "an alias refers to a value that contains it "
                                               "(a cycle)", line)])
        if depth > MAX_DEPTH:
            raise YamlProblem([ConfigIssue("", f"nested deeper than {MAX_DEPTH} levels", line)])
        distinct += 1
        kids = _children(node)
        if not kids:
            size[key] = 1
            continue
        active.add(key)
        stack.append((node, depth, True))
        stack.extend((k, depth + 1, False) for k in kids)
    if size[id(root)] > MAX_EXPANSION + 20 * distinct:
        raise YamlProblem([ConfigIssue("", f"aliases expand {distinct} values written into "
                                           f"{size[id(root)]}: refused (an alias bomb?)",
                                       root.start_mark.line + 1)])


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


class YamlProblem(Exception):
    """YAML that cannot be read as config data; carries located issues."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("; ".join(i.message for i in issues))


def _yaml_issue(exc: yaml.YAMLError) -> ConfigIssue:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    msg = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    return ConfigIssue(path="", message=msg, line=mark.line + 1 if mark else None)


def _build(node: yaml.Node, path: Path, lines: dict[Path, int],
           problems: list[ConfigIssue], constructor: yaml.SafeLoader,
           merged: dict[int, int]) -> Any:
    """The data of `node`; `merged`: per mapping node already flattened, how many of its
    pairs came from merge keys (an aliased node is built again, flattened already)."""
    if isinstance(node, yaml.MappingNode):
        if id(node) not in merged:
            own = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
            constructor.flatten_mapping(node)  # resolves YAML merge keys (<<), first
            merged[id(node)] = len(node.value) - own
        out: dict[Any, Any] = {}
        inherited: set[str] = set()  # keys a merge key gave: the mapping's own override them
        for i, (key_node, value_node) in enumerate(node.value):
            key = constructor.construct_object(key_node, deep=True)
            if isinstance(key, bool):  # a region named `no:` would be a region "False"
                problems.append(ConfigIssue(
                    format_path(path), f"key {key_node.value} is read by YAML as the boolean "
                    f"{str(key).lower()}: quote it ('{key_node.value}')",
                    key_node.start_mark.line + 1))
                continue
            if not isinstance(key, (str, int, float, bool)):
                problems.append(ConfigIssue(format_path(path), "mapping keys must be scalars",
                                            key_node.start_mark.line + 1))
                continue
            key = str(key) if not isinstance(key, str) else key
            child: Path = (*path, key)
            if key in out and key in inherited:
                inherited.discard(key)  # standard YAML: a key after `<<` overrides the merged one
            elif key in out:
                problems.append(ConfigIssue(format_path(child),
                                            f"duplicate key '{key}' (first at line {lines[child]})",
                                            key_node.start_mark.line + 1))
                continue
            if i < merged[id(node)]:
                inherited.add(key)
            lines[child] = key_node.start_mark.line + 1
            out[key] = _build(value_node, child, lines, problems, constructor, merged)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            child = (*path, i)
            lines[child] = item.start_mark.line + 1
            items.append(_build(item, child, lines, problems, constructor, merged))
        return items
    return constructor.construct_object(node, deep=True)
