"""A small etcd v3 client over etcd's JSON gateway (`/v3/...`), with httpx.

Why not a library: etcd3gw (the gateway client we measured) speaks to one host and its
watch has no read timeout, so failing over between members and bounding every call,
which a fleet needs most, would be ours to add around it anyway; aetcd (gRPC, asyncio)
would run the lease keepalive on the event loop that also runs the probes, and a busy
loop would let the lease expire. The gateway is etcd's documented, stable API: this
client is the dozen calls the fleet uses, each bounded by `timeout` (1 s: a request
sent while etcd's own raft leader dies can hang for seconds) and tried on the next
member when one does not answer. Thread-safe: one client serves every thread.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from failover.errors import FailoverError


class EtcdError(FailoverError):
    """etcd answered with an error (a bad request, auth, a compacted revision)."""


class EtcdUnavailable(EtcdError):
    """No member answered within the timeout, or none has quorum; `failed` says why of
    each member asked, as (endpoint, why)."""

    def __init__(self, message: str, failed: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.failed = tuple(failed)


class WatchCompacted(EtcdError):
    """The revision a watch asked for was compacted: read everything again."""

    def __init__(self, revision: int) -> None:
        super().__init__(f"revision compacted up to {revision}")
        self.revision = revision


@dataclass(frozen=True)
class KV:
    """One key as etcd holds it."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    def json(self) -> Any:
        return json.loads(self.value)


@dataclass(frozen=True)
class WatchEvent:
    """A put (kv holds the new value) or a delete (kv holds the key only)."""

    type: str  # "PUT" or "DELETE"
    kv: KV


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def prefix_end(prefix: str) -> str:
    """The range end that covers every key starting with `prefix`."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return raw.decode()


def kv_of(item: dict[str, Any]) -> KV:
    # a key that is not UTF-8 (anyone who can write to etcd can make one) is read, not fatal
    return KV(base64.b64decode(item.get("key", "")).decode(errors="replace"),
              base64.b64decode(item.get("value", "")),
              int(item.get("create_revision", 0)), int(item.get("mod_revision", 0)),
              int(item.get("version", 0)), int(item.get("lease", 0)))


# --------------------------------------------------------------- transaction parts

def if_absent(key: str) -> dict[str, Any]:
    """Compare: the key does not exist (create revision 0)."""
    return {"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}


def if_created(key: str, revision: int) -> dict[str, Any]:
    """Compare: the key exists with this create revision (still the same incarnation)."""
    return {"key": b64(key), "target": "CREATE", "result": "EQUAL",
            "create_revision": str(revision)}


def put_op(key: str, value: str | bytes, lease: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {"key": b64(key), "value": b64(value)}
    if lease:
        body["lease"] = str(lease)
    return {"request_put": body}


def get_op(key: str) -> dict[str, Any]:
    return {"request_range": {"key": b64(key)}}


class Etcd:
    """A client for an etcd cluster: `endpoints` are its members' client URLs."""

    def __init__(self, endpoints: Sequence[str], *, timeout: float = 1.0,
                 ca: str | None = None, cert: str | None = None, key: str | None = None,
                 user: str | None = None, password: str | None = None) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoints")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.timeout = timeout
        verify: Any = True
        if ca or cert:
            import ssl

            # the client certificate is presented whether the members' CA is ours or the
            # system's
            verify = ssl.create_default_context(cafile=ca)
            if cert:
                verify.load_cert_chain(cert, key)
        # trust_env off: a proxy set in the environment (HTTP_PROXY, ALL_PROXY) must never
        # carry etcd's traffic, its credentials or its TLS
        self._http = httpx.Client(verify=verify, timeout=timeout, trust_env=False,
                                  limits=httpx.Limits(max_keepalive_connections=8))
        self._current = 0
        self._lock = threading.Lock()
        self._user, self._password = user, password
        self._token: str | None = None
        self.last_error: str | None = None

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------- requests

    def call(self, path: str, body: dict[str, Any], timeout: float | None = None) -> Any:
        """POST `body` to `/v3/<path>` on a member that answers; tried on each member
        once. Raises EtcdUnavailable when none answers, EtcdError for an error answer."""
        errors: list[tuple[str, str]] = []
        start = self._current
        n = len(self.endpoints)
        for i in range(n):
            idx = (start + i) % n
            url = f"{self.endpoints[idx]}/v3/{path}"
            try:
                resp = self._http.post(url, json=body, headers=self._headers(),
                                       timeout=timeout or self.timeout)
            except httpx.HTTPError as exc:
                errors.append((self.endpoints[idx], _why(exc)))
                continue
            data = _decode(resp)
            if resp.status_code >= 400 or "error" in data:
                message = str(data.get("error") or data.get("message") or resp.text[:200])
                if "auth token" in message and self._user:
                    self._token = None  # expired: authenticate again, once
                    resp = self._http.post(url, json=body, headers=self._headers(),
                                           timeout=timeout or self.timeout)
                    data = _decode(resp)
                    if resp.status_code < 400 and "error" not in data:
                        self._current = idx
                        return data
                    message = str(data.get("error") or data.get("message"))
                if resp.status_code >= 500 or _unavailable(message):
                    errors.append((self.endpoints[idx], message))
                    continue
                raise EtcdError(f"etcd {self.endpoints[idx]} refused {path}: {message}")
            self._current = idx
            self.last_error = None
            return data
        self.last_error = "; ".join(f"{endpoint}: {why}" for endpoint, why in errors)
        raise EtcdUnavailable("no etcd member answered: " + self.last_error, errors)

    def _headers(self) -> dict[str, str]:
        if self._user is None:
            return {}
        if self._token is None:
            with self._lock:
                if self._token is None:
                    self._token = self._authenticate()
        return {"Authorization": self._token}

    def _authenticate(self) -> str:
        for endpoint in self.endpoints:
            try:
                resp = self._http.post(f"{endpoint}/v3/auth/authenticate", json={
                    "name": self._user, "password": self._password})
            except httpx.HTTPError:
                continue
            data = _decode(resp)
            if "token" in data:
                return str(data["token"])
            raise EtcdError(f"etcd {endpoint} refused user {self._user!r}: "
                            f"{data.get('error') or data.get('message')}")
        raise EtcdUnavailable("no etcd member answered to authenticate")

    # -------------------------------------------------------------------------- kv

    def get(self, key: str) -> KV | None:
        data = self.call("kv/range", {"key": b64(key)})
        kvs = data.get("kvs") or []
        return kv_of(kvs[0]) if kvs else None

    def get_prefix(self, prefix: str, keys_only: bool = False) -> tuple[list[KV], int]:
        """Every key under `prefix`, and the revision the reading is at."""
        body: dict[str, Any] = {"key": b64(prefix), "range_end": b64(prefix_end(prefix))}
        if keys_only:
            body["keys_only"] = True
        data = self.call("kv/range", body)
        return [kv_of(i) for i in data.get("kvs") or []], int(data["header"]["revision"])

    def count(self, prefix: str) -> int:
        data = self.call("kv/range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix)),
                                      "count_only": True})
        return int(data.get("count", 0))

    def put(self, key: str, value: str | bytes, lease: int = 0) -> int:
        body: dict[str, Any] = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        return int(self.call("kv/put", body)["header"]["revision"])

    def delete(self, key: str, prefix: bool = False, end: str | None = None) -> int:
        body = {"key": b64(key)}
        if prefix:
            body["range_end"] = b64(prefix_end(key))
        elif end is not None:
            body["range_end"] = b64(end)
        return int(self.call("kv/deleterange", body).get("deleted", 0))

    def txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]],
            failure: list[dict[str, Any]] | None = None) -> tuple[bool, list[Any]]:
        """A transaction: (whether `compare` held, the responses of the branch taken)."""
        data = self.call("kv/txn", {"compare": compare, "success": success,
                                    "failure": failure or []})
        return bool(data.get("succeeded")), list(data.get("responses") or [])

    def revision(self, key: str = "\0") -> int:
        """The cluster's revision now, read by counting `key`: give one the user may read
        (with etcd auth, a role limited to a prefix may read nothing else)."""
        data = self.call("kv/range", {"key": b64(key), "count_only": True})
        return int(data["header"]["revision"])

    def compact(self, revision: int) -> None:
        try:
            self.call("kv/compaction", {"revision": str(revision)}, timeout=5.0)
        except EtcdError as exc:
            if "compacted" not in str(exc):
                raise

    # ----------------------------------------------------------------------- lease

    def grant(self, ttl: int) -> int:
        data = self.call("lease/grant", {"TTL": str(ttl)})
        return int(data["ID"])

    def keepalive(self, lease: int) -> int:
        """Renew a lease; the TTL it has now (0: it expired, it is gone)."""
        data = self.call("lease/keepalive", {"ID": str(lease)})
        result = data.get("result", data)
        return int(result.get("TTL", 0))

    def revoke(self, lease: int) -> None:
        try:
            self.call("lease/revoke", {"ID": str(lease)})
        except EtcdError as exc:
            if "not found" not in str(exc):
                raise

    # ----------------------------------------------------------------------- watch

    def watch(self, prefix: str, start_revision: int, read_timeout: float,
              stop: threading.Event) -> Iterator[tuple[int, list[WatchEvent]]]:
        """Changes under `prefix` from `start_revision` on, as (revision, events), until
        `stop` is set, no change comes within `read_timeout` (then it returns: watch
        again from the next revision) or the member goes away (EtcdUnavailable)."""
        body = {"create_request": {"key": b64(prefix), "range_end": b64(prefix_end(prefix)),
                                   "start_revision": str(start_revision)}}
        n = len(self.endpoints)
        idx = self._current
        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        for i in range(n):
            url = f"{self.endpoints[(idx + i) % n]}/v3/watch"
            try:
                with self._http.stream("POST", url, json=body, headers=self._headers(),
                                       timeout=timeout) as resp:
                    buf = b""
                    for chunk in resp.iter_bytes():
                        if stop.is_set():
                            return
                        buf += chunk
                        while b"\n" in buf:
                            line, buf = buf.split(b"\n", 1)
                            if line.strip():
                                yield self._watch_result(line)
                    return
            except httpx.ReadTimeout:
                return  # quiet: the caller watches again
            except httpx.HTTPError as exc:
                self.last_error = f"{self.endpoints[(idx + i) % n]}: {_why(exc)}"
                continue
        raise EtcdUnavailable("no etcd member answered a watch: " + (self.last_error or ""))

    @staticmethod
    def _watch_result(line: bytes) -> tuple[int, list[WatchEvent]]:
        data = json.loads(line)
        if "error" in data:
            raise EtcdError(f"watch failed: {data['error']}")
        result = data.get("result", {})
        if int(result.get("compact_revision", 0) or 0):
            raise WatchCompacted(int(result["compact_revision"]))
        if result.get("canceled"):
            raise EtcdError(f"watch canceled: {result.get('cancel_reason', '')}")
        revision = int(result.get("header", {}).get("revision", 0))
        events = [WatchEvent(e.get("type", "PUT"), kv_of(e["kv"]))
                  for e in result.get("events") or []]
        return revision, events


def _decode(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        return {"error": f"HTTP {resp.status_code}: {resp.text[:200]}"}
    return data if isinstance(data, dict) else {"error": f"unexpected answer {data!r:.200}"}


def _unavailable(message: str) -> bool:
    """An error a member gives while it cannot serve (no leader, no quorum, stopping)."""
    words = ("no leader", "timed out", "timeout", "leader changed", "not capable",
             "unhealthy", "stopped", "too many requests", "deadline")
    return any(w in message.lower() for w in words)


def _why(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "no answer within the timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or unreachable"
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")

