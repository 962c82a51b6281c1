"""Throwaway PKI for one test control plane: a CA, the API server's serving
certificate, client certificates and the service-account signing key.

Everything is generated per session (seconds with EC keys) so no key material is
ever committed or shared between runs.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=2)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _write_key(path: Path, key) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca: CertPair
    apiserver: CertPair
    admin: CertPair
    controller_manager: CertPair
    front_proxy_client: CertPair  # the aggregation layer's client (kubeadm: front-proxy-client)
    sa_key: Path  # private key: kube-controller-manager signs tokens with it
    sa_pub: Path  # public key: kube-apiserver verifies tokens with it


class _Ca:
    def __init__(self, extra_ips: tuple[str, ...] = ()) -> None:
        self.extra_ips = extra_ips  # more addresses the API server's certificate names
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name("fti-test-ca"))
            .issuer_name(_name("fti-test-ca"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @classmethod
    def load(cls, cert: Path, key: Path) -> _Ca:
        ca = cls.__new__(cls)
        ca.cert = x509.load_pem_x509_certificate(cert.read_bytes())
        ca.key = serialization.load_pem_private_key(key.read_bytes(), password=None)
        ca.extra_ips = ()
        return ca

    def issue(self, cn: str, org: str | None, server: bool) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, org))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        )
        if server:
            # Every name a client in this harness may use for the API server.
            sans = [
                x509.DNSName("localhost"),
                x509.DNSName("kubernetes"),
                x509.DNSName("kubernetes.default"),
                x509.DNSName("kubernetes.default.svc"),
                x509.DNSName("kubernetes.default.svc.cluster.local"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("10.0.0.1")),  # first IP of the service range
                *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in self.extra_ips if ip != "127.0.0.1"),
            ]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
            usage = [ExtendedKeyUsageOID.SERVER_AUTH]
        else:
            usage = [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        return builder.sign(self.key, hashes.SHA256()), key


def issue(pki: Pki, directory: Path, stem: str, cn: str, org: str | None = None, server: bool = False) -> CertPair:
    """One more certificate from an existing PKI's CA (a node's kubelet, kube-proxy)."""
    cert, key = _Ca.load(pki.ca.cert, pki.ca.key).issue(cn, org, server)
    _write_cert(directory / f"{stem}.crt", cert)
    _write_key(directory / f"{stem}.key", key)
    return CertPair(directory / f"{stem}.crt", directory / f"{stem}.key")


def generate(directory: Path, extra_ips: tuple[str, ...] = ()) -> Pki:
    """Write the PKI into ``directory`` and return the file paths."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _Ca(tuple(extra_ips))
    _write_cert(directory / "ca.crt", ca.cert)
    _write_key(directory / "ca.key", ca.key)

    def pair(stem: str, cn: str, org: str | None = None, server: bool = False) -> CertPair:
        cert, key = ca.issue(cn, org, server)
        _write_cert(directory / f"{stem}.crt", cert)
        _write_key(directory / f"{stem}.key", key)
        return CertPair(directory / f"{stem}.crt", directory / f"{stem}.key")

    # Service-account tokens are RS256 by default, so this key is RSA.
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(directory / "sa.key", sa)
    (directory / "sa.pub").write_bytes(
        sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return Pki(
        ca=CertPair(directory / "ca.crt", directory / "ca.key"),
        apiserver=pair("apiserver", "kube-apiserver", server=True),
        # system:masters is bound to cluster-admin by the bootstrap RBAC policy.
        admin=pair("admin", "fti-test-admin", "system:masters"),
        # The bootstrap policy grants this user exactly what the controller manager needs.
        controller_manager=pair("controller-manager", "system:kube-controller-manager"),
        front_proxy_client=pair("front-proxy-client", "front-proxy-client"),
        sa_key=directory / "sa.key",
        sa_pub=directory / "sa.pub",
    )
