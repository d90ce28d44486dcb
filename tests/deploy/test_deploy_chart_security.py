"""Transport security in the chart: TLS, peer authentication, the health port, certificates.

Renders the chart with ``security`` off (it must change nothing), with each peer-auth mode and
both certificate sources (cert-manager Certificates, existing Secrets), then checks the
settings, volumes, probes, Services, NetworkPolicies and Certificates of every render, runs
``kubernetes-validate --strict`` and checkov over them (prod's Certificates meet the
cert-manager CRD in test_deploy_chart.py), and proves the wiring end to end: the rendered
files, made on disk the way cert-manager and the kubelet would (``cluster_files.py``), load in
the real settings of both services, a real model service (scripted engine, no vLLM) starts with
them, and a client configured like the router reaches it (TLS, mutual TLS, shared secret,
server-name override) while one without the credentials is refused.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.deploy.cluster_files import ClusterFiles, cluster_for, mounted, router_settings_file
from tests.deploy.helpers import (
    CHECKOV_SKIPS,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    RELEASE,
    DeployTools,
    Rendered,
    core_objects,
    env_of,
    pod_spec,
    render,
    render_error,
    router_config,
    write_objects,
)

ROUTER = f"{RELEASE}-tierroute-router"
TIERS = ("small", "large")
TLS_DIR = "/etc/tierroute-tls"
PEER_FILE = "/etc/tierroute-peer/shared-secret"
HEALTH_PORT = 50090
PROBE_SOURCE = {"ipBlock": {"cidr": "10.0.0.0/16"}}
SERVER_NAME = "tiers.tierroute.internal"
ROUTER_SPIFFE = "spiffe://cluster.local/ns/tierroute/sa/router"

# Every security knob set, with the switches off: the render must equal the defaults'.
OFF = {
    "security": {
        "peerAuth": {
            "mode": "none",
            "existingSecret": "ignored",
            "secretKey": "token",
            "previousSecretSeconds": 60,
            "pinRouter": True,
        },
        "tls": {
            "enabled": False,
            "issuerRef": {"name": "some-ca", "kind": "ClusterIssuer"},
            "existingSecret": "ignored",
            "router": {"existingSecret": "ignored"},
            "tierServerName": SERVER_NAME,
            "healthPort": 50051,
        },
    },
    "networkPolicy": {"healthProbeSources": [PROBE_SOURCE]},
}
# The variants besides prod (cert-manager ClusterIssuer, mtls): the keys of VARIANTS.
VARIANTS: dict[str, dict[str, Any]] = {
    # cert-manager Issuer, bearer secret, a CNI that needs the node CIDR on the health port.
    "issuer-secret": {
        "security": {
            "peerAuth": {
                "mode": "sharedSecret",
                "existingSecret": "tierroute-peer",
                "secretKey": "token",
            },
            "tls": {"enabled": True, "issuerRef": {"name": "tierroute-ca"}},
        },
        "networkPolicy": {"healthProbeSources": [PROBE_SOURCE]},
        # The OpenAI sidecar dials its router over TLS.
        "router": {"openai": {"enabled": True}},
    },
    # Existing Secrets (the router's own, one for every tier naming neither tier Service),
    # the router's client certificate required, no `helm test` pod.
    "existing": {
        "security": {
            "tls": {
                "enabled": True,
                "existingSecret": "tierroute-tls",
                "router": {"existingSecret": "tierroute-router-tls"},
                "mtlsToTiers": True,
                "tierServerName": SERVER_NAME,
            },
            # The router's identity pinned by hand (its certificate is not the chart's).
            "peerAuth": {"allowedPeerSans": [f"{ROUTER}.{NAMESPACE}.svc", ROUTER_SPIFFE]},
        },
        "tests": {"enabled": False},
    },
}


@pytest.fixture(scope="module")
def secured(tools: DeployTools, rendered: dict[str, Rendered]) -> dict[str, Rendered]:
    """The renders under test: "off", the VARIANTS and prod (from the shared fixture)."""
    sets = {"off": OFF, **VARIANTS}
    # Each render is its own process: overlap them.
    with ThreadPoolExecutor(max_workers=len(sets)) as pool:
        futures = {name: pool.submit(render, tools, "default", v) for name, v in sets.items()}
        results = {name: future.result() for name, future in futures.items()}
    return {**results, "prod": rendered["prod"]}


def _deployment(result: Rendered, name: str) -> dict[str, Any]:
    return result.one("Deployment", f"{RELEASE}-tierroute-{name}")


def _container(result: Rendered, name: str) -> dict[str, Any]:
    container: dict[str, Any] = pod_spec(_deployment(result, name))["containers"][0]
    return container


def _volumes(result: Rendered, name: str) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod_spec(_deployment(result, name))["volumes"]}


def _mounts(result: Rendered, name: str) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in _container(result, name)["volumeMounts"]}


def _endpoint_host(config: dict[str, Any], tier: str) -> str:
    (endpoint,) = next(t for t in config["tiers"] if t["name"] == tier)["endpoints"]
    host: str = endpoint.removeprefix("dns:///").rsplit(":", 1)[0]
    return host


# --- off: nothing changes ----------------------------------------------------------------------


def test_security_off_renders_exactly_the_defaults(
    secured: dict[str, Rendered], rendered: dict[str, Rendered]
) -> None:
    # Byte for byte, NOTES.txt included: the switches off make every other knob inert.
    assert secured["off"].manifests == rendered["default"].manifests
    assert not [o for o in rendered["default"].objects if o["kind"] == "Certificate"]
    assert "tier_tls" not in router_config(rendered["default"])


# --- certificates ------------------------------------------------------------------------------


def test_cert_manager_certificates_name_the_services_the_router_dials(
    secured: dict[str, Rendered],
) -> None:
    for variant, kind, mutual in (
        ("prod", "ClusterIssuer", True),
        ("issuer-secret", "Issuer", False),
    ):
        result = secured[variant]
        config = router_config(result)
        certificates = {c["metadata"]["name"]: c["spec"] for c in result.of_kind("Certificate")}
        assert set(certificates) == {f"{RELEASE}-tierroute-{n}-tls" for n in ("router", *TIERS)}
        for name, spec in certificates.items():
            assert spec["secretName"] == name
            assert spec["issuerRef"] == {
                "name": "tierroute-ca",
                "kind": kind,
                "group": "cert-manager.io",
            }
            assert spec["privateKey"]["rotationPolicy"] == "Always"
        for tier in TIERS:
            spec = certificates[f"{RELEASE}-tierroute-{tier}-tls"]
            # The headless Service's name as the router dials it, and the short forms.
            host = _endpoint_host(config, tier)
            assert host in spec["dnsNames"]
            assert spec["dnsNames"][0] == host.split(".")[0]
            assert spec["usages"] == ["digital signature", "server auth"]
            service = result.one("Service", host.split(".")[0])
            assert service["spec"]["clusterIP"] == "None"
        router = certificates[f"{ROUTER}-tls"]
        assert f"{ROUTER}.{NAMESPACE}.svc.cluster.local" in router["dnsNames"]
        assert ("client auth" in router["usages"]) is mutual
    # Existing Secrets: no Certificate at all.
    assert secured["existing"].of_kind("Certificate") == []


def test_openai_sidecar_dials_its_router_over_tls(secured: dict[str, Rendered]) -> None:
    result = secured["issuer-secret"]
    (sidecar,) = [
        c for c in pod_spec(_deployment(result, "router"))["containers"] if c["name"] == "openai"
    ]
    args = sidecar["args"]
    server_name = args[args.index("--router-server-name") + 1]
    assert args[args.index("--router-ca-file") + 1] == "/etc/tierroute-tls/ca.crt"
    assert server_name == f"{ROUTER}.{NAMESPACE}.svc"
    # The name it checks is one the router's Certificate carries.
    router = result.one("Certificate", f"{ROUTER}-tls")["spec"]
    assert server_name in router["dnsNames"]
    mounts = {m["name"]: m for m in sidecar["volumeMounts"]}
    assert mounts["tls"] == {
        "name": "tls",
        "mountPath": "/etc/tierroute-tls",
        "readOnly": True,
    }
    # The flags are ones the endpoint accepts.
    from openai_gateway.__main__ import parse_args

    parsed = parse_args(args)
    assert parsed.router == "127.0.0.1:50051"


# --- settings of the services ------------------------------------------------------------------


def test_router_settings_per_mode(secured: dict[str, Rendered]) -> None:
    tls = {"cert_file": f"{TLS_DIR}/tls.crt", "key_file": f"{TLS_DIR}/tls.key"}
    client = {"cert_file": f"{TLS_DIR}/tls.crt", "key_file": f"{TLS_DIR}/tls.key"}
    ca = {"ca_file": f"{TLS_DIR}/ca.crt"}
    expected = {
        "prod": ({**ca, **client}, None),
        "issuer-secret": (ca, {"shared_secret_file": PEER_FILE}),
        "existing": ({**ca, **client, "server_name": SERVER_NAME}, None),
    }
    for variant, (tier_tls, tier_auth) in expected.items():
        config = router_config(secured[variant])
        assert config["server"]["tls"] == tls, variant
        assert config["server"]["health_port"] == HEALTH_PORT
        assert config["tier_tls"] == tier_tls, variant
        assert config.get("tier_auth") == tier_auth, variant


def test_model_settings_per_mode(secured: dict[str, Rendered]) -> None:
    tls = {
        "TIERROUTE_SERVER__TLS__CERT_FILE": f"{TLS_DIR}/tls.crt",
        "TIERROUTE_SERVER__TLS__KEY_FILE": f"{TLS_DIR}/tls.key",
        "TIERROUTE_SERVER__HEALTH_PORT": str(HEALTH_PORT),
    }
    mutual = {
        "TIERROUTE_SERVER__TLS__CLIENT_CA_FILE": f"{TLS_DIR}/ca.crt",
        "TIERROUTE_SERVER__TLS__REQUIRE_CLIENT_AUTH": "true",
    }
    router_dns = f"{ROUTER}.{NAMESPACE}.svc"
    expected = {
        # Prod pins the router's identity (pinRouter): its Service's DNS name.
        "prod": {
            **tls,
            **mutual,
            "TIERROUTE_AUTH__MODE": "mtls",
            "TIERROUTE_AUTH__ALLOWED_PEER_SANS": json.dumps([router_dns]),
        },
        "issuer-secret": {
            **tls,
            "TIERROUTE_AUTH__MODE": "shared_secret",
            "TIERROUTE_AUTH__SHARED_SECRET_FILE": PEER_FILE,
            "TIERROUTE_AUTH__PREVIOUS_SECRET_SECONDS": "300",
        },
        # mtlsToTiers without peerAuth: the handshake demands the certificate, auth stays none
        # apart from the names pinned by hand.
        "existing": {
            **tls,
            **mutual,
            "TIERROUTE_AUTH__ALLOWED_PEER_SANS": json.dumps(
                [router_dns, ROUTER_SPIFFE], separators=(",", ":")
            ),
        },
        "off": {},
    }
    for variant, wanted in expected.items():
        for tier in TIERS:
            env = env_of(_container(secured[variant], tier))
            security = {
                k: v
                for k, v in env.items()
                if k.startswith(
                    ("TIERROUTE_SERVER__TLS", "TIERROUTE_AUTH", "TIERROUTE_SERVER__HEALTH")
                )
            }
            assert security == wanted, (variant, tier)
            # The secret itself is never in the environment.
            assert not any("SHARED_SECRET" in k and "FILE" not in k for k in env)


def test_secrets_are_mounted_read_only_where_the_settings_point(
    secured: dict[str, Rendered],
) -> None:
    tls_secrets = {
        "prod": {"router": f"{ROUTER}-tls", **{t: f"{RELEASE}-tierroute-{t}-tls" for t in TIERS}},
        "issuer-secret": {
            "router": f"{ROUTER}-tls",
            **{t: f"{RELEASE}-tierroute-{t}-tls" for t in TIERS},
        },
        "existing": {"router": "tierroute-router-tls", **{t: "tierroute-tls" for t in TIERS}},
    }
    for variant, by_pod in tls_secrets.items():
        result = secured[variant]
        for pod, secret_name in by_pod.items():
            volumes, mounts = _volumes(result, pod), _mounts(result, pod)
            assert volumes["tls"]["secret"] == {"secretName": secret_name, "defaultMode": 0o440}
            assert mounts["tls"] == {"name": "tls", "mountPath": TLS_DIR, "readOnly": True}
            if variant == "issuer-secret":
                assert volumes["peer-auth"]["secret"] == {
                    "secretName": "tierroute-peer",
                    "defaultMode": 0o440,
                    "items": [{"key": "token", "path": "shared-secret"}],
                }
                assert mounts["peer-auth"]["readOnly"] is True
                assert PEER_FILE.startswith(mounts["peer-auth"]["mountPath"] + "/")
            else:
                assert "peer-auth" not in volumes and "peer-auth" not in mounts
    for pod in ("router", *TIERS):
        assert not {"tls", "peer-auth"} & set(_volumes(secured["off"], pod))


# --- probes, Services, NetworkPolicies ---------------------------------------------------------


@pytest.mark.parametrize("variant", ["prod", "issuer-secret", "existing"])
def test_every_probe_moves_to_the_plaintext_health_port(
    secured: dict[str, Rendered], variant: str
) -> None:
    result = secured[variant]
    for pod in ("router", *TIERS):
        container = _container(result, pod)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["health"] == HEALTH_PORT
        assert len(set(ports.values())) == len(ports)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": HEALTH_PORT}, (pod, probe)
    test_pod = [p for p in result.of_kind("Pod") if p["metadata"]["name"].endswith("test-health")]
    if variant == "existing":
        assert test_pod == []
    else:
        # The helm test checks the router through its Service's health port (no TLS client).
        (test_spec,) = test_pod
        target = test_spec["spec"]["containers"][0]["args"][0]
        assert target == f"{ROUTER}.{NAMESPACE}.svc.cluster.local:{HEALTH_PORT}"


def test_health_port_is_reachable_only_from_where_probes_come(
    secured: dict[str, Rendered],
) -> None:
    test_peer = {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "tierroute",
                "app.kubernetes.io/instance": RELEASE,
                "app.kubernetes.io/component": "test",
            }
        }
    }

    def health_rules(policy: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            rule
            for rule in policy["spec"]["ingress"]
            if HEALTH_PORT in [p["port"] for p in rule["ports"]]
        ]

    expected = {
        # (router's health peers, tiers' health peers); None: no rule (the node is never blocked)
        "prod": ([test_peer], None),
        "issuer-secret": ([PROBE_SOURCE, test_peer], [PROBE_SOURCE]),
        "existing": (None, None),
    }
    for variant, (router_peers, model_peers) in expected.items():
        result = secured[variant]
        for name, peers in ((ROUTER, router_peers), (f"{RELEASE}-tierroute-model", model_peers)):
            rules = health_rules(result.one("NetworkPolicy", name))
            if peers is None:
                assert rules == [], (variant, name)
            else:
                (rule,) = rules
                assert rule["from"] == peers, (variant, name)
                # Never an empty `from` (that would admit every source).
                assert [p["port"] for p in rule["ports"]] == [HEALTH_PORT]
        router_service_ports = {
            p["name"]: p["port"] for p in result.one("Service", ROUTER)["spec"]["ports"]
        }
        assert ("health" in router_service_ports) is (variant != "existing")
        for tier in TIERS:
            tier_ports = result.one("Service", f"{RELEASE}-tierroute-{tier}")["spec"]["ports"]
            assert [p["name"] for p in tier_ports] == ["grpc", "metrics"]
        # The router still reaches the tiers on their gRPC ports only.
        to_models = result.one("NetworkPolicy", ROUTER)["spec"]["egress"][1]
        assert [p["port"] for p in to_models["ports"]] == [50061]
    test_policy = secured["prod"].one("NetworkPolicy", f"{RELEASE}-tierroute-test")
    assert [p["port"] for p in test_policy["spec"]["egress"][1]["ports"]] == [HEALTH_PORT]


# --- validation of the renders -----------------------------------------------------------------


def test_variants_validate_strictly_and_pass_checkov(
    tools: DeployTools, secured: dict[str, Rendered], tmp_path: Path
) -> None:
    # prod's objects are checked with the other environments' in test_deploy_chart.py.
    core = [o for variant in VARIANTS for o in core_objects(secured[variant])]
    path = write_objects(core, tmp_path / "security.yaml")
    validate = [tools.binary("kubernetes-validate"), "-k", KUBERNETES_VERSIONS[0], "--strict"]
    result = tools.run([*validate, str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource ") == len(core)
    checkov = [tools.binary("checkov"), "--framework", "kubernetes", "-f", str(path)]
    checkov += ["--skip-download", "--skip-check", ",".join(sorted(CHECKOV_SKIPS)), "-o", "json"]
    report = json.loads(tools.run(checkov).stdout)
    assert [c["check_id"] for c in report["results"]["failed_checks"]] == []
    assert report["summary"]["passed"] > 300


# --- refusals ----------------------------------------------------------------------------------

TLS_BY_ISSUER = {"enabled": True, "issuerRef": {"name": "ca"}}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"security": {"peerAuth": {"mode": "token"}}}, "/security/peerAuth/mode"),
        ({"security": {"peerAuth": {"mode": "sharedSecret"}}}, "/security/peerAuth/existingSecret"),
        ({"security": {"peerAuth": {"mode": "mtls"}}}, "/security/tls/enabled"),
        ({"security": {"tls": {"mtlsToTiers": True}}}, "/security/tls/enabled"),
        ({"security": {"tls": {"enabled": True}}}, "set security.tls.issuerRef.name"),
        (
            {"security": {"peerAuth": {"allowedPeerSans": ["router.tierroute.svc"]}}},
            "allowedPeerSans pins the router's client certificate: it needs peerAuth.mode mtls",
        ),
        (
            {"security": {"tls": TLS_BY_ISSUER, "peerAuth": {"allowedPeerSans": ["a b"]}}},
            "/security/peerAuth/allowedPeerSans/0",
        ),
        (
            {"security": {"tls": {**TLS_BY_ISSUER, "healthPort": 9465}}},
            "healthPort 9465 is already a gRPC or metrics port",
        ),
        (
            {"modelDefaults": {"settings": {"auth": {"mode": "none"}}}},
            "invalid propertyName 'auth'",
        ),
        ({"router": {"config": {"tier_auth": {}}}}, "additional properties 'tier_auth'"),
        (
            {
                "router": {
                    "config": {
                        "auth": {"keys": [{"tenant": "a", "sha256": "0" * 64, "usd_per_day": 0}]}
                    }
                }
            },
            "/router/config/auth/keys/0/usd_per_day",
        ),
    ],
)
def test_bad_security_values_are_refused(
    tools: DeployTools, overrides: dict[str, Any], message: str
) -> None:
    assert message in render_error(tools, overrides)


# --- end to end: the rendered files in the real services ---------------------------------------


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No TIERROUTE_* variable of the test run leaks into the settings under test."""
    import os

    for name in [n for n in os.environ if n.startswith("TIERROUTE_")]:
        monkeypatch.delenv(name)
    yield monkeypatch


def _cluster(result: Rendered, root: Path, variant: str) -> tuple[ClusterFiles, str]:
    """The namespace's Secrets and ConfigMaps for a render; returns them and the peer secret."""
    cluster = cluster_for(result, root)
    if variant == "existing":
        # Made outside the chart: the tiers' certificate names none of the tier Services.
        cluster.add_tls_secret("tierroute-tls", [SERVER_NAME], ["server auth"])
        cluster.add_tls_secret(
            "tierroute-router-tls", [f"{ROUTER}.{NAMESPACE}.svc"], ["server auth", "client auth"]
        )
    peer = secrets.token_hex(24)
    cluster.add_secret("tierroute-peer", {"token": (peer + "\n").encode()})
    return cluster, peer


@pytest.mark.parametrize("variant", ["prod", "issuer-secret", "existing"])
async def test_rendered_files_connect_the_router_to_a_real_tier(
    secured: dict[str, Rendered],
    tmp_path: Path,
    clean_environment: pytest.MonkeyPatch,
    variant: str,
) -> None:
    from model_svc.config import ModelServiceSettings
    from model_svc.engines.scripted import ScriptedEngine
    from model_svc.server import ModelServer
    from router_svc.config import RouterSettings
    from tierroute.transport import bearer_metadata, open_channel
    from tierroute.v1 import model_service_pb2, model_service_pb2_grpc

    result = secured[variant]
    cluster, peer = _cluster(result, tmp_path / "cluster", variant)

    # The router: its router.yaml, as mounted, with paths into its mounted Secrets.
    router = RouterSettings.load(router_settings_file(cluster, result, ROUTER))
    assert router.server.tls is not None and router.server.health_port == HEALTH_PORT
    tier = router.tiers[0]
    assert tier.tls is not None

    # The small tier: its environment, as rendered, with paths into its mounted Secrets.
    model_files, model_container = mounted(cluster, result, f"{RELEASE}-tierroute-small")
    for name, value in env_of(model_container).items():
        if name.startswith("TIERROUTE_") and name != "TIERROUTE_CACHE_DIR":
            clean_environment.setenv(name, model_files.local(value))
    loopback = {"host": "127.0.0.1", "port": 0, "health_port": 0, "metrics_port": None}
    settings = ModelServiceSettings.load(tier="small", server=loopback)
    assert settings.server.tls is not None
    server = ModelServer(settings, ScriptedEngine())
    await server.bootstrap.start()
    try:
        await server.warm_up()
        await server.bootstrap.set_serving(True)
        target = f"127.0.0.1:{server.bootstrap.port}"
        # The router dials dns:///<host>:port: that host is the name checked in the
        # certificate unless tier_tls.server_name says otherwise.
        host = tier.endpoints[0].removeprefix("dns:///").rsplit(":", 1)[0]
        as_router = tier.tls
        if as_router.server_name is None:
            as_router = as_router.model_copy(update={"server_name": host})
        secret = tier.auth.secret() if tier.auth is not None else None
        assert secret == (peer if variant == "issuer-secret" else None)

        async def model_info(tls: Any, metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
            async with open_channel(target, tls) as channel:
                stub = model_service_pb2_grpc.ModelServiceStub(channel)  # type: ignore[no-untyped-call]
                try:
                    await stub.GetModelInfo(
                        model_service_pb2.GetModelInfoRequest(), timeout=5, metadata=metadata
                    )
                except grpc.aio.AioRpcError as exc:
                    return exc.code()
                return grpc.StatusCode.OK

        # As the router would: served.
        assert await model_info(as_router, bearer_metadata(secret)) == grpc.StatusCode.OK
        # The kubelet's plaintext probe on the health port sees SERVING.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.bootstrap.health_port}") as ch:
            reply = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        # Plaintext on the main port: no handshake.
        assert await model_info(None, bearer_metadata(secret)) == grpc.StatusCode.UNAVAILABLE
        # Without the peer credential the chart configured: refused.
        if variant == "issuer-secret":
            assert await model_info(as_router, ()) == grpc.StatusCode.UNAUTHENTICATED
        else:
            anonymous = as_router.model_copy(update={"cert_file": None, "key_file": None})
            assert await model_info(anonymous, ()) == grpc.StatusCode.UNAVAILABLE
        if variant in ("prod", "existing"):
            # Pinned to the router's names: another workload's certificate of the same CA is
            # refused, with the names it presented.
            intruder = cluster.authority.issue(["batch.tierroute.svc"], ["client auth"])
            (tmp_path / "intruder.crt").write_bytes(intruder["tls.crt"])
            (tmp_path / "intruder.key").write_bytes(intruder["tls.key"])
            as_intruder = as_router.model_copy(
                update={
                    "cert_file": tmp_path / "intruder.crt",
                    "key_file": tmp_path / "intruder.key",
                }
            )
            assert await model_info(as_intruder, ()) == grpc.StatusCode.PERMISSION_DENIED
        if variant == "existing":
            # The certificate names no tier Service: without the override it does not verify.
            by_host = as_router.model_copy(update={"server_name": host})
            assert await model_info(by_host, ()) == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.bootstrap.stop()
        await server.shutdown()


def test_api_keys_with_a_daily_budget_come_from_the_mounted_secret(
    tools: DeployTools, tmp_path: Path, clean_environment: pytest.MonkeyPatch
) -> None:
    # router.config.auth passes through; the keys (hashed, each with its usd_per_day) live in
    # the Secret mounted from router.existingSecret.
    from router_svc.auth import hash_key, load_keys
    from router_svc.config import RouterSettings

    keys_file = "/etc/tierroute-secrets/keys.yaml"
    overrides = {
        "router": {
            "existingSecret": "tierroute-api-keys",
            "config": {"auth": {"enabled": True, "keys_file": keys_file}},
        }
    }
    result = render(tools, "prod", overrides)
    cluster = cluster_for(result, tmp_path)
    key = secrets.token_hex(16)
    entry = {"tenant": "acme", "sha256": hash_key(key), "usd_per_day": 25.0}
    cluster.add_secret(
        "tierroute-api-keys", {"keys.yaml": yaml.safe_dump({"keys": [entry]}).encode()}
    )
    settings = RouterSettings.load(router_settings_file(cluster, result, ROUTER))
    assert settings.auth.enabled is True
    (loaded,) = load_keys(settings.auth)
    assert (loaded.tenant, loaded.usd_per_day) == ("acme", 25.0)
