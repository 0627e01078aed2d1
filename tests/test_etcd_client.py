"""The etcd client (failover/cluster/etcd.py) against a real etcd: a proxy in the
environment never carries its traffic, and its client certificate is presented when the
members' CA is the system's (no ca_file)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover.cluster.etcd import Etcd, EtcdError
from failover.localdns import free_port
from failover.localetcd import LocalEtcd, etcd_binary
from tests.test_fleet import etcd as etcd


class Proxy:
    """A listening socket that records every connection and answers 502: what a proxy
    named by HTTP_PROXY would see of the traffic sent to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.seen: list[bytes] = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.seen.append(conn.recv(4096))
                    conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass


def test_proxy_variables_never_carry_etcd_traffic(etcd: LocalEtcd,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = Proxy()
    try:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.url)
        client = Etcd(etcd.endpoints)
        try:
            client.put("/failover/proxy/x", "1")
            got = client.get("/failover/proxy/x")
            assert got is not None and got.value == b"1"
        finally:
            client.close()
        assert proxy.seen == []  # not a byte (nor an auth token) went to the proxy
    finally:
        proxy.sock.close()


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def certificates(d: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "2", "-subj", "/CN=failover test CA", cwd=d)
    # etcd's JSON gateway calls its own gRPC server with the server certificate: with
    # client-cert-auth that certificate must be good for clients too
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\n"
                                 "extendedKeyUsage=serverAuth,clientAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile",
                f"{name}.ext", cwd=d)


@pytest.fixture
def tls_etcd(tmp_path: Path, etcd: LocalEtcd) -> Iterator[tuple[str, Path]]:
    """One etcd member on https://127.0.0.1 that requires a client certificate signed by
    the test CA; yields its URL and the certificates' directory."""
    del etcd  # only its check that etcd is installed
    assert shutil.which("openssl"), "openssl is needed for the TLS tests"
    d = tmp_path / "tls"
    d.mkdir()
    certificates(d)
    client_port, peer_port = free_port(), free_port()
    while peer_port == client_port:
        peer_port = free_port()
    url, peer = f"https://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    binary = etcd_binary()
    assert binary is not None
    proc = subprocess.Popen(
        [binary, "--name", "tls", "--data-dir", str(d / "data"),
         "--listen-client-urls", url, "--advertise-client-urls", url,
         "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
         "--initial-cluster", f"tls={peer}", "--client-cert-auth",
         "--trusted-ca-file", str(d / "ca.pem"), "--cert-file", str(d / "server.pem"),
         "--key-file", str(d / "server.key"), "--logger", "zap", "--log-level", "warn"],
        stdout=(d / "etcd.log").open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        context = ssl.create_default_context(cafile=str(d / "ca.pem"))
        context.load_cert_chain(str(d / "client.pem"), str(d / "client.key"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, (d / "etcd.log").read_text()
            try:
                with socket.create_connection(("127.0.0.1", client_port), timeout=0.5) as s, \
                        context.wrap_socket(s, server_hostname="127.0.0.1"):
                    break
            except OSError:
                time.sleep(0.05)
        yield url, d
    finally:
        proc.kill()
        proc.wait(timeout=10)
        shutil.rmtree(d / "data", ignore_errors=True)


def test_the_client_certificate_is_presented_without_ca_file(
        tls_etcd: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    url, d = tls_etcd
    # the members' CA is one the system trusts (here: OpenSSL's SSL_CERT_FILE)
    monkeypatch.setenv("SSL_CERT_FILE", str(d / "ca.pem"))
    anonymous = Etcd([url])
    try:
        with pytest.raises(EtcdError):  # the member requires a client certificate
            anonymous.put("/failover/tls/x", "1")
    finally:
        anonymous.close()
    client = Etcd([url], cert=str(d / "client.pem"), key=str(d / "client.key"))
    try:
        client.put("/failover/tls/x", "1")
        got = client.get("/failover/tls/x")
        assert got is not None and got.value == b"1"
    finally:
        client.close()
