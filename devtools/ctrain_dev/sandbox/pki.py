"""Certificates and keys for the sandbox's control plane.

One CA signs the apiserver's serving certificate and every client certificate (admin,
controller-manager, scheduler, node); a separate key pair signs ServiceAccount
tokens. Everything is written once per sandbox directory and reused on the next `up`.
"""

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVICE_CLUSTER_IP = "10.0.0.1"
APISERVER_SANS = [
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
]
# Client identities: file stem -> (common name, organisation).
CLIENTS = {
    "admin": ("ctrain-admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", None),
    "scheduler": ("system:kube-scheduler", None),
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", "system:masters"),
}
_VALIDITY = datetime.timedelta(days=365)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organisation: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organisation:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    return x509.Name(attributes)


def _sign(builder: x509.CertificateBuilder, ca_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    return (
        builder.serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .sign(ca_key, hashes.SHA256())
    )


def _leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    *,
    server_names: list[str] | None = None,
    server_ips: list[str] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server_names else []
    usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if server_names:
        alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in server_names]
        alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips or []]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return _sign(builder, ca_key), key


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure_pki(directory: Path, node_name: str, host_ip: str) -> Path:
    """Create the sandbox PKI in `directory` unless it is already there; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "ca.crt").exists():
        return directory
    ca_key = _key()
    ca_subject = _name("ctrain-sandbox-ca")
    ca_cert = _sign(
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ),
        ca_key,
    )
    _write_cert(directory / "ca.crt", ca_cert)
    _write_key(directory / "ca.key", ca_key)

    serving, serving_key = _leaf(
        ca_cert,
        ca_key,
        _name("kube-apiserver"),
        server_names=APISERVER_SANS,
        server_ips=["127.0.0.1", host_ip, SERVICE_CLUSTER_IP],
    )
    _write_cert(directory / "apiserver.crt", serving)
    _write_key(directory / "apiserver.key", serving_key)

    clients = dict(CLIENTS)
    clients["node"] = (f"system:node:{node_name}", "system:nodes")
    for stem, (common_name, organisation) in clients.items():
        cert, key = _leaf(ca_cert, ca_key, _name(common_name, organisation))
        _write_cert(directory / f"{stem}.crt", cert)
        _write_key(directory / f"{stem}.key", key)

    kubelet, kubelet_key = _leaf(
        ca_cert,
        ca_key,
        _name(f"system:node:{node_name}"),
        server_names=["localhost", node_name],
        server_ips=["127.0.0.1"],
    )
    _write_cert(directory / "kubelet.crt", kubelet)
    _write_key(directory / "kubelet.key", kubelet_key)

    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(directory / "sa.key", signing_key)
    (directory / "sa.pub").write_bytes(
        signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return directory


def issue(
    directory: Path,
    stem: str,
    common_name: str,
    organisation: str | None = None,
    server_names: list[str] | None = None,
    server_ips: list[str] | None = None,
) -> tuple[Path, Path]:
    """A further certificate from the sandbox CA (written once): (`stem`.crt, `stem`.key)."""
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    ca_cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    cert, key = _leaf(
        ca_cert,
        ca_key,
        _name(common_name, organisation),
        server_names=server_names,
        server_ips=server_ips,
    )
    _write_cert(cert_path, cert)
    _write_key(key_path, key)
    return cert_path, key_path
