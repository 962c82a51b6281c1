"""The test bed's cluster-DNS stand-in (tests/node/dns.py) answers queries as a resolver expects."""

import socket
import struct

from node.dns import answer


def _query(name: str, qtype: int = 1, ident: int = 0x1234) -> bytes:
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)


RECORDS = {"kubernetes.default.svc.cluster.local": "10.0.0.1"}


def _lookup(name):
    if name in RECORDS:
        return RECORDS[name]
    return "" if any(r.endswith("." + name) for r in RECORDS) else None


def _rcode_and_answers(response: bytes) -> tuple[int, int]:
    _, flags, _, ancount, _, _ = struct.unpack("!HHHHHH", response[:12])
    return flags & 0xF, ancount


def test_a_record_of_a_service():
    response = answer(_query("kubernetes.default.svc.cluster.local"), _lookup)
    assert response[:2] == b"\x12\x34"
    assert _rcode_and_answers(response) == (0, 1)
    assert socket.inet_ntoa(response[-4:]) == "10.0.0.1"


def test_unknown_cluster_name_is_nxdomain_and_outside_names_are_refused():
    assert _rcode_and_answers(answer(_query("kubernetes.default.svc.fraud.svc.cluster.local"), _lookup)) == (3, 0)
    assert _rcode_and_answers(answer(_query("pypi.org"), _lookup)) == (5, 0)


def test_aaaa_of_a_known_name_is_empty_not_nxdomain():
    # An NXDOMAIN for AAAA would make resolvers give up on the name's A record too.
    assert _rcode_and_answers(answer(_query("kubernetes.default.svc.cluster.local", qtype=28), _lookup)) == (0, 0)
    assert _rcode_and_answers(answer(_query("default.svc.cluster.local"), _lookup)) == (0, 0)
