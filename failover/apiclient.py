"""The CLI's calls to the running controller's HTTP endpoint (`controller.listen`): its
live /status when the state file is behind it, and an override change it takes over
(holding it in memory) when the CLI cannot write the state itself."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from failover.errors import FailoverError, InputError, SecretError

if TYPE_CHECKING:
    from failover.config import Config

# a controller listening on every address answers on loopback
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def base_url(cfg: Config) -> str:
    """Where this machine reaches the controller the config describes."""
    from failover.config import split_host_port

    host, port = split_host_port(cfg.controller.listen)
    host = _WILDCARDS.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def live_status(cfg: Config, timeout: float = 2.0) -> dict[str, Any] | None:
    """The running controller's /status, None when it does not answer."""
    try:
        with urllib.request.urlopen(f"{base_url(cfg)}/status", timeout=timeout) as r:
            data = json.loads(r.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "regions" in data else None


def state_problems(status: dict[str, Any]) -> list[str]:
    """The problems a controller's /status reports about its state store (they start with
    "state ": "state store failing (write): ...", "state X opened read-only: ...")."""
    return [p for p in status.get("problems", []) if isinstance(p, str) and p.startswith("state ")]


def failing_state(cfg: Config, timeout: float = 2.0) -> str | None:
    """What the running controller's /readyz says about its state store, when it says it
    fails (its state file is then behind it); None when it is fine or does not answer."""
    try:
        with urllib.request.urlopen(f"{base_url(cfg)}/readyz", timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
    except OSError:
        return None
    found = state_problems({"problems": [x[2:] for x in text.splitlines() if x.startswith("- ")]})
    return found[0] if found else None


def send_change(cfg: Config, action: str, body: dict[str, Any], timeout: float = 10.0) -> str:
    """POST an override change (drain, restore, pin, unpin) to the running controller with
    the config's API token; its answer. Raises InputError when the controller refuses the
    change as invalid, FailoverError when it cannot be asked or refuses otherwise."""
    url = f"{base_url(cfg)}/v1/{action}"
    try:
        token = cfg.api_token()
    except SecretError as exc:
        raise FailoverError(f"the API token cannot be read here ({exc})") from None
    if token is None:
        raise FailoverError("no API token is configured (controller.token_env or "
                            "token_file), so the controller takes no change over HTTP")
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token[1]}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return str(json.loads(r.read())["message"])
    except urllib.error.HTTPError as exc:
        try:
            said = str(json.loads(exc.read())["error"])
        except (ValueError, KeyError, TypeError, OSError):
            said = exc.reason
        if exc.code == 400:
            raise InputError(said) from None
        raise FailoverError(f"the controller at {url} refused it ({exc.code}): {said}") from None
    except (OSError, ValueError, KeyError) as exc:
        raise FailoverError(f"the controller does not answer at {url}: "
                            f"{getattr(exc, 'reason', exc)}") from None
