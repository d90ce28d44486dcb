"""The files a pod of the rendered chart would see, made on disk at test time.

:class:`ClusterFiles` plays two cluster parts offline:

- cert-manager with a CA issuer: every rendered ``Certificate`` becomes a ``kubernetes.io/tls``
  Secret (``tls.crt``, ``tls.key``, ``ca.crt``) whose certificate carries the Certificate's
  ``dnsNames`` and extended key usages; :meth:`ClusterFiles.add_tls_secret` makes one for an
  "existing" Secret with the names given; :meth:`ClusterFiles.add_secret` any other Secret.
- the kubelet: :meth:`ClusterFiles.mount` writes a container's Secret and ConfigMap volumes
  (``items`` honoured) under a folder of its own and returns a :class:`PodFiles` that maps the
  container's absolute paths onto those files, so the services' settings can load the rendered
  configuration as is.

EC P-256 keys keep generation in milliseconds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.deploy.helpers import Rendered, pod_spec

USAGES = {
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
}


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Authority:
    """A CA that signs leaf certificates the way cert-manager's CA issuer does."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, common_name: str) -> Authority:
        """A fresh self-signed CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def issue(self, dns_names: list[str], usages: list[str]) -> dict[str, bytes]:
        """The Secret data of a certificate for ``dns_names`` with ``usages`` (cert-manager's)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(dns_names[0]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
            )
        )
        extended = [USAGES[u] for u in usages if u in USAGES]
        if extended:
            builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return {
            "tls.crt": _pem_cert(cert),
            "tls.key": _pem_key(key),
            "ca.crt": _pem_cert(self.cert),
        }


@dataclass(frozen=True)
class PodFiles:
    """A container's mounts: container path prefix -> local folder."""

    mounts: dict[str, Path]

    def local(self, path: str) -> str:
        """The local file behind ``path`` (unchanged when no mount holds it)."""
        for prefix in sorted(self.mounts, key=len, reverse=True):
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return str(self.mounts[prefix] / path[len(prefix) :].lstrip("/"))
        return path

    def localize(self, value: Any) -> Any:
        """``value`` (a config tree) with every mounted path replaced by its local file."""
        if isinstance(value, dict):
            return {key: self.localize(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.localize(item) for item in value]
        if isinstance(value, str) and value.startswith("/"):
            return self.local(value)
        return value


@dataclass
class ClusterFiles:
    """Secrets and ConfigMaps of a namespace, written out per pod; see the module docstring."""

    root: Path
    authority: Authority = field(default_factory=lambda: Authority.create("tierroute test CA"))
    secrets: dict[str, dict[str, bytes]] = field(default_factory=dict)
    config_maps: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def issue_certificates(self, certificates: list[dict[str, Any]]) -> None:
        """Each rendered cert-manager ``Certificate`` as its Secret, signed by the CA."""
        for certificate in certificates:
            spec = certificate["spec"]
            self.secrets[spec["secretName"]] = self.authority.issue(
                spec["dnsNames"], spec.get("usages", [])
            )

    def add_tls_secret(self, name: str, dns_names: list[str], usages: list[str]) -> None:
        """An "existing" TLS Secret, made by the same CA."""
        self.secrets[name] = self.authority.issue(dns_names, usages)

    def add_secret(self, name: str, data: dict[str, bytes]) -> None:
        """Any other Secret."""
        self.secrets[name] = data

    def add_config_maps(self, config_maps: list[dict[str, Any]]) -> None:
        """Rendered ConfigMaps, mountable by name."""
        for config_map in config_maps:
            data = config_map.get("data", {})
            self.config_maps[config_map["metadata"]["name"]] = {
                key: value.encode() for key, value in data.items()
            }

    def mount(self, pod: str, spec: dict[str, Any], container: dict[str, Any]) -> PodFiles:
        """Write the Secret and ConfigMap volumes ``container`` mounts; fails on a missing one."""
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounts: dict[str, Path] = {}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "secret" in volume:
                source = volume["secret"]
                data = self.secrets[source["secretName"]]
            elif "configMap" in volume:
                source = volume["configMap"]
                data = self.config_maps[source["name"]]
            else:
                continue  # emptyDir, claims: nothing to read
            folder = self.root / pod / mount["name"]
            folder.mkdir(parents=True, exist_ok=True)
            items = source.get("items") or [{"key": key, "path": key} for key in data]
            for item in items:
                (folder / item["path"]).write_bytes(data[item["key"]])
            mounts[mount["mountPath"]] = folder
        return PodFiles(mounts)


REDIS_AUTH_TOKEN = b"token-from-secrets-manager"
"""The Redis AUTH token of the test cluster (a test value, not a secret)."""


def cluster_for(rendered: Rendered, root: Path) -> ClusterFiles:
    """The Secrets of the render's Certificates and its ConfigMaps, ready to mount."""
    cluster = ClusterFiles(root)
    cluster.issue_certificates(rendered.of_kind("Certificate"))
    cluster.add_config_maps(rendered.of_kind("ConfigMap"))
    # Made by Terraform next to ElastiCache (modules/platform), mounted by prod's router.
    cluster.add_secret("tierroute-redis-auth", {"auth-token": REDIS_AUTH_TOKEN})
    return cluster


def mounted(
    cluster: ClusterFiles, rendered: Rendered, deployment: str
) -> tuple[PodFiles, dict[str, Any]]:
    """The first container of a Deployment with its volumes written out; and that container."""
    spec = pod_spec(rendered.one("Deployment", deployment))
    container: dict[str, Any] = spec["containers"][0]
    return cluster.mount(deployment, spec, container), container


def router_settings_file(cluster: ClusterFiles, rendered: Rendered, deployment: str) -> Path:
    """The router's mounted ``--config`` file, its paths rewritten to the mounted files."""
    files, container = mounted(cluster, rendered, deployment)
    args = container["args"]
    mounted_config = Path(files.local(args[args.index("--config") + 1]))
    config = files.localize(yaml.safe_load(mounted_config.read_text()))
    path = cluster.root / f"{deployment}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
