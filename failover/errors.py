"""The one exception hierarchy of failover; the CLI maps it to exit codes."""

from __future__ import annotations

from dataclasses import dataclass


class FailoverError(Exception):
    """Base of every expected failure; its message is meant for the user."""

    exit_code = 1


class InputError(FailoverError):
    """Invalid input from the user (config, CLI arguments): exit code 2."""

    exit_code = 2


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file, located by field path and, where known, line."""

    path: str
    message: str
    line: int | None = None

    def render(self, source: str | None = None) -> str:
        where = source or "config"
        if self.line is not None:
            where = f"{where}:{self.line}"
        field = f"{self.path}: " if self.path else ""
        return f"{where}: {field}{self.message}"


class ConfigError(InputError):
    """A config that does not validate; carries every issue found, not only the first."""

    def __init__(self, issues: list[ConfigIssue], source: str | None = None,
                 what: str = "config") -> None:
        self.issues = sorted(issues, key=lambda i: (i.line is None, i.line or 0, i.path))
        self.source = source
        self.what = what  # the kind of file: "config", "scenario"
        super().__init__("\n".join(i.render(source) for i in self.issues))


class SecretError(InputError):
    """A secret reference (env var or file) that cannot be resolved."""


class SecretMissing(SecretError):
    """A secret not there (yet): its variable unset or its file unreadable. `validate`
    warns (the service's environment may hold it); anything that needs it fails."""
