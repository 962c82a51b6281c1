"""A STAND-IN for cluster DNS (CoreDNS) on the test bed's node.

Clients in pods find the API server as ``kubernetes.default.svc`` (Kopf's in-cluster
login does) and Services as ``<svc>.<ns>.svc.cluster.local``, so the node needs cluster
DNS. CoreDNS can be built from its Go module but costs minutes of build; this answers
exactly what pods here ask: A records of ClusterIP Services under ``cluster.local``
(read from the API server every half second), an empty answer for other record types
of those names, NXDOMAIN for every other name under ``cluster.local`` and REFUSED for
names outside it (there is no upstream to forward to). kubelet points pods at it with
``clusterDNS`` (tests/node/README.md).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

from kubernetes import client

DOMAIN = "cluster.local"
TTL = 5


def _parse_question(packet: bytes) -> tuple[str, int, int]:
    """(name, qtype, end offset) of the first question; raises ValueError if malformed."""
    labels, i = [], 12
    while True:
        length = packet[i]
        if length == 0:
            i += 1
            break
        if length & 0xC0:
            raise ValueError("compressed name in a question")
        labels.append(packet[i + 1 : i + 1 + length].decode("ascii", "replace"))
        i += 1 + length
    qtype, _qclass = struct.unpack("!HH", packet[i : i + 4])
    return ".".join(labels).lower().rstrip("."), qtype, i + 4


def answer(packet: bytes, lookup) -> bytes | None:
    """The response to one query; ``lookup(name)`` -> IPv4 string, "" (known, no A) or None."""
    if len(packet) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount != 1 or flags & 0x8000:
        return None
    try:
        name, qtype, end = _parse_question(packet)
    except (ValueError, IndexError):
        return None
    question = packet[12:end]
    rd = flags & 0x0100
    if not (name == DOMAIN or name.endswith("." + DOMAIN)):
        rcode, answers = 5, b""  # REFUSED: no upstream
    else:
        ip = lookup(name)
        if ip is None:
            rcode, answers = 3, b""  # NXDOMAIN
        elif qtype == 1 and ip:
            rcode, answers = 0, struct.pack("!HHHIH", 0xC00C, 1, 1, TTL, 4) + socket.inet_aton(ip)
        else:
            rcode, answers = 0, b""  # the name exists, without a record of this type
    header = struct.pack("!HHHHHH", ident, 0x8000 | 0x0400 | rd | 0x0080 | rcode, 1, 1 if answers else 0, 0, 0)
    return header + question + answers


class ClusterDNS:
    """Serves UDP DNS on ``address``:53 from the Services of ``api``'s cluster."""

    def __init__(self, api: client.ApiClient, address: str, port: int = 53) -> None:
        self.core = client.CoreV1Api(api)
        self.records: dict[str, str] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, port))
        self.sock.settimeout(0.5)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._serve, name="cluster-dns", daemon=True),
            threading.Thread(target=self._refresh, name="cluster-dns-refresh", daemon=True),
        ]

    def start(self) -> ClusterDNS:
        self._load()
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self.sock.close()

    def _load(self) -> None:
        records = {}
        for svc in self.core.list_service_for_all_namespaces().items:
            ip = svc.spec.cluster_ip
            records[f"{svc.metadata.name}.{svc.metadata.namespace}.svc.{DOMAIN}"] = "" if ip in (None, "None") else ip
        self.records = records

    def _refresh(self) -> None:
        while not self._stop.wait(0.5):
            # The API server may be stopping: keep the last records.
            with contextlib.suppress(Exception):
                self._load()

    def lookup(self, name: str) -> str | None:
        if name in self.records:
            return self.records[name]
        # Intermediate names (svc.cluster.local, <ns>.svc.cluster.local) exist without records.
        if any(r.endswith("." + name) for r in self.records):
            return ""
        return None

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                packet, peer = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            response = answer(packet, self.lookup)
            if response is not None:
                with contextlib.suppress(OSError):
                    self.sock.sendto(response, peer)
