"""The rendered chart's key fields: what makes the platform work once installed.

GPUs and node pools per tier, probes sized for model loading, the router's tier endpoints against
the tier Services, NetworkPolicy selectors, pod security, the objects from the observability
files, and the contracts with the services (the rendered configs load in their settings).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from tests.deploy.cluster_files import (
    REDIS_AUTH_TOKEN,
    cluster_for,
    mounted,
    router_settings_file,
)
from tests.deploy.helpers import (
    CHART,
    CHECKOV_SKIPS,
    ENVIRONMENTS,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    RELEASE,
    DeployTools,
    Rendered,
    core_objects,
    env_of,
    matches,
    pod_spec,
    render,
    router_config,
    write_objects,
)

# --- what the platform depends on ------------------------------------------------------------


def test_router_tier_endpoints_resolve_to_the_tier_services(rendered: dict[str, Rendered]) -> None:
    for environment in ENVIRONMENTS:
        result = rendered[environment]
        config = router_config(result)
        tiers = result.values["tiers"]
        assert [t["name"] for t in config["tiers"]] == [t["name"] for t in tiers]
        for tier, configured in zip(tiers, config["tiers"], strict=True):
            assert configured["input_usd_per_mtok"] == tier["prices"]["inputUsdPerMtok"]
            assert configured["output_usd_per_mtok"] == tier["prices"]["outputUsdPerMtok"]
            (endpoint,) = configured["endpoints"]
            host, port = endpoint.removeprefix("dns:///").rsplit(":", 1)
            service_name, namespace, svc, *domain = host.split(".")
            assert (namespace, svc, ".".join(domain)) == (NAMESPACE, "svc", "cluster.local")
            service = result.one("Service", service_name)
            # Headless: DNS returns every ready replica and the router balances over them.
            assert service["spec"]["clusterIP"] == "None"
            grpc_port = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
            assert grpc_port["port"] == int(port)
            deployment = result.one("Deployment", service_name)
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            assert matches(service["spec"]["selector"], labels)
            assert labels["tierroute/tier"] == tier["name"]
            # No other tier's pods behind this Service.
            others = [
                d
                for d in result.of_kind("Deployment")
                if d["metadata"]["name"] != deployment["metadata"]["name"]
            ]
            assert not any(
                matches(service["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
                for d in others
            )
            container = pod_spec(deployment)["containers"][0]
            assert container["args"] == ["--tier", tier["name"]]
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert ports["grpc"] == int(port)
            assert env_of(container)["TIERROUTE_SERVER__PORT"] == port


def test_rendered_router_config_loads_in_the_router(
    rendered: dict[str, Rendered], tmp_path: Path
) -> None:
    # The contract with router_svc: the file the chart writes is one the router accepts, with
    # the certificate files it names (prod: TLS) where the pod mounts them.
    from router_svc.config import RouterSettings

    for environment in ENVIRONMENTS:
        cluster = cluster_for(rendered[environment], tmp_path / environment)
        path = router_settings_file(cluster, rendered[environment], f"{RELEASE}-tierroute-router")
        settings = RouterSettings.model_validate(yaml.safe_load(path.read_text()))
        # Shared router state: Redis wherever replicas autoscale, read from the mounted Secret.
        expected = "memory" if environment == "default" else "redis"
        assert settings.state.backend.value == expected, environment
        if environment == "prod":
            assert settings.state.url.startswith("rediss://")
            assert settings.state.password() == REDIS_AUTH_TOKEN.decode()
        assert settings.server.port == 50051
        assert settings.server.metrics_port == 9464
        assert settings.server.host == "0.0.0.0"
        assert list(settings.tier_names) == [
            t["name"] for t in rendered[environment].values["tiers"]
        ]


def test_rendered_model_environment_loads_in_the_model_service(
    rendered: dict[str, Rendered], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The contract with model_svc: every TIERROUTE_* variable the chart sets is a setting the
    # model service knows (its settings forbid unknown keys) with a value it accepts; files it
    # names (prod: TLS certificates) are read where the pod mounts them.
    from model_svc.config import ModelServiceSettings

    checked = 0
    for environment in ENVIRONMENTS:
        cluster = cluster_for(rendered[environment], tmp_path / environment)
        for deployment in rendered[environment].of_kind("Deployment"):
            if "tierroute/tier" not in deployment["spec"]["selector"]["matchLabels"]:
                continue
            files, container = mounted(
                cluster, rendered[environment], deployment["metadata"]["name"]
            )
            env = env_of(container)
            with monkeypatch.context() as patch:
                for name in [n for n in os.environ if n.startswith("TIERROUTE_")]:
                    patch.delenv(name)
                for name, value in env.items():
                    if name.startswith("TIERROUTE_"):
                        patch.setenv(name, files.local(value))
                settings = ModelServiceSettings.load(tier=container["args"][1])
            assert settings.tier == container["args"][1]
            assert str(settings.engine.model) == env["TIERROUTE_ENGINE__MODEL"]
            assert settings.engine.tensor_parallel_size == int(
                env["TIERROUTE_ENGINE__TENSOR_PARALLEL_SIZE"]
            )
            assert settings.engine.enforce_eager is False
            assert settings.limits.max_concurrent_streams == 256
            assert settings.server.port == 50061 and settings.server.metrics_port == 9465
            assert settings.prices.output_usd_per_mtok == float(
                env["TIERROUTE_PRICES__OUTPUT_USD_PER_MTOK"]
            )
            # prod: TLS, the router's certificate required, a prompt-token cap on every tier.
            prod = environment == "prod"
            assert (settings.server.tls is not None) is prod
            assert settings.auth.mode == ("mtls" if prod else "none")
            assert settings.limits.max_prompt_tokens == (12288 if prod else None)
            checked += 1
    assert checked == 6


def test_model_tiers_request_their_gpus(rendered: dict[str, Rendered]) -> None:
    prod = rendered["prod"]
    expected = {"small": (1, 4, "gpu-small"), "large": (4, 2, "gpu-large")}
    for tier, (gpus, replicas, pool) in expected.items():
        deployment = prod.one("Deployment", f"{RELEASE}-tierroute-{tier}")
        assert deployment["spec"]["replicas"] == replicas
        spec = pod_spec(deployment)
        container = spec["containers"][0]
        assert container["resources"]["requests"]["nvidia.com/gpu"] == gpus
        assert container["resources"]["limits"]["nvidia.com/gpu"] == gpus
        assert env_of(container)["TIERROUTE_ENGINE__TENSOR_PARALLEL_SIZE"] == str(gpus)
        assert spec["nodeSelector"] == {"tierroute/pool": pool}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
            "tolerations"
        ]
    # The router never lands on a GPU node.
    router = pod_spec(prod.one("Deployment", f"{RELEASE}-tierroute-router"))
    assert router["nodeSelector"] == {"tierroute/pool": "cpu"}
    assert "nvidia.com/gpu" not in json.dumps(router)


def test_model_engine_and_price_environment(rendered: dict[str, Rendered]) -> None:
    container = pod_spec(rendered["prod"].one("Deployment", f"{RELEASE}-tierroute-large"))[
        "containers"
    ][0]
    env = env_of(container)
    assert env["TIERROUTE_ENGINE__MODEL"] == "/models/meta-llama/Llama-3.3-70B-Instruct"
    assert env["TIERROUTE_ENGINE__MAX_MODEL_LEN"] == "32768"
    assert env["TIERROUTE_ENGINE__GPU_MEMORY_UTILIZATION"] == "0.9"
    assert env["TIERROUTE_PRICES__INPUT_USD_PER_MTOK"] == "0.95"
    assert env["TIERROUTE_PRICES__OUTPUT_USD_PER_MTOK"] == "7.6"
    assert env["TIERROUTE_SERVER__HOST"] == "0.0.0.0"
    assert env["TIERROUTE_SERVER__METRICS_PORT"] == "9465"
    assert env["HF_HUB_OFFLINE"] == "1"


def test_extra_engine_settings_become_environment_variables(tools: DeployTools) -> None:
    engine = {"enforce_eager": False, "max_num_seqs": 128, "dtype": "bfloat16", "extra": [1, 2]}
    result = render(tools, overrides={"modelDefaults": {"engine": engine}})
    env = env_of(pod_spec(result.one("Deployment", f"{RELEASE}-tierroute-small"))["containers"][0])
    assert env["TIERROUTE_ENGINE__ENFORCE_EAGER"] == "false"
    assert env["TIERROUTE_ENGINE__MAX_NUM_SEQS"] == "128"
    assert env["TIERROUTE_ENGINE__DTYPE"] == "bfloat16"
    assert json.loads(env["TIERROUTE_ENGINE__EXTRA"]) == [1, 2]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_probes_are_grpc_and_sized_for_loading(
    rendered: dict[str, Rendered], environment: str
) -> None:
    result = rendered[environment]
    tiers = {t["name"]: t for t in result.values["tiers"]}
    defaults = result.values["modelDefaults"]
    for deployment in result.of_kind("Deployment"):
        if deployment["metadata"]["labels"]["app.kubernetes.io/component"] == "redis":
            continue  # the dev Redis probes with redis-cli (test_deploy_state_store)
        spec = pod_spec(deployment)
        (container,) = spec["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        # With TLS on (prod), the plaintext health-only port: kubelet probes speak no TLS.
        probed = ports["health"] if result.values["security"]["tls"]["enabled"] else ports["grpc"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": probed}, probe
        startup = container["startupProbe"]
        window = startup["periodSeconds"] * startup["failureThreshold"]
        liveness = container["livenessProbe"]
        tier_name = deployment["spec"]["selector"]["matchLabels"].get("tierroute/tier")
        if tier_name is None:
            grace, pre_stop = result.values["router"]["graceSeconds"], 5
            assert window >= result.values["router"]["probes"]["startupSeconds"]
        else:
            tier = {**defaults, **tiers[tier_name]}
            grace, pre_stop = tier["graceSeconds"], tier["preStopSleepSeconds"]
            startup_seconds = {**defaults["probes"], **tier.get("probes", {})}["startupSeconds"]
            assert window >= startup_seconds
            assert window >= 600  # model loading takes minutes on real GPUs
        assert container["lifecycle"]["preStop"]["sleep"]["seconds"] == pre_stop
        # The drain (preStop + server grace) fits the termination grace period, and liveness
        # does not kill a replica that is draining (NOT_SERVING) before it is done.
        assert spec["terminationGracePeriodSeconds"] > grace + pre_stop
        assert liveness["periodSeconds"] * liveness["failureThreshold"] > grace + pre_stop


def test_prod_large_tier_may_take_forty_minutes_to_start(rendered: dict[str, Rendered]) -> None:
    startup = pod_spec(rendered["prod"].one("Deployment", f"{RELEASE}-tierroute-large"))[
        "containers"
    ][0]["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 2400


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_pod_is_locked_down(rendered: dict[str, Rendered], environment: str) -> None:
    workloads = rendered[environment].of_kind("Deployment") + rendered[environment].of_kind("Pod")
    assert len(workloads) >= 4
    for workload in workloads:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] >= 10000
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, container["name"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert "limits" in container["resources"]


def test_network_policies_admit_only_the_router_and_prometheus(
    rendered: dict[str, Rendered],
) -> None:
    result = rendered["prod"]
    policy = result.one("NetworkPolicy", f"{RELEASE}-tierroute-model")
    router_pods = result.one("Deployment", f"{RELEASE}-tierroute-router")["spec"]["template"]
    model_deployments = [
        d
        for d in result.of_kind("Deployment")
        if "tierroute/tier" in d["spec"]["selector"]["matchLabels"]
    ]
    assert len(model_deployments) == 2
    for deployment in model_deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert matches(policy["spec"]["podSelector"]["matchLabels"], labels)
    # Not the router itself.
    assert not matches(
        policy["spec"]["podSelector"]["matchLabels"], router_pods["metadata"]["labels"]
    )
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    grpc_rule, metrics_rule = policy["spec"]["ingress"]
    (router_peer,) = grpc_rule["from"]
    assert set(router_peer) == {"podSelector"}  # same namespace, router pods only
    assert matches(router_peer["podSelector"]["matchLabels"], router_pods["metadata"]["labels"])
    assert [p["port"] for p in grpc_rule["ports"]] == [50061]
    (prometheus_peer,) = metrics_rule["from"]
    assert prometheus_peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    assert prometheus_peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    assert [p["port"] for p in metrics_rule["ports"]] == [9465]
    # Egress: DNS, and HTTPS for the object-store copy (prod copies from S3).
    assert {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]} == {53, 443}

    router_policy = result.one("NetworkPolicy", f"{RELEASE}-tierroute-router")
    assert matches(
        router_policy["spec"]["podSelector"]["matchLabels"], router_pods["metadata"]["labels"]
    )
    to_models = router_policy["spec"]["egress"][1]
    (model_peer,) = to_models["to"]
    for deployment in model_deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert matches(model_peer["podSelector"]["matchLabels"], labels)


def test_default_weights_come_from_a_read_only_claim(rendered: dict[str, Rendered]) -> None:
    spec = pod_spec(rendered["default"].one("Deployment", f"{RELEASE}-tierroute-small"))
    assert "initContainers" not in spec
    volume = next(v for v in spec["volumes"] if v["name"] == "models")
    assert volume["persistentVolumeClaim"] == {"claimName": "tierroute-models", "readOnly": True}
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "models")
    assert mount == {"name": "models", "mountPath": "/models", "readOnly": True}
    assert not any(
        r["ports"][0]["port"] == 443
        for r in rendered["default"].one("NetworkPolicy", f"{RELEASE}-tierroute-model")["spec"][
            "egress"
        ]
    )


def test_prod_weights_are_copied_from_the_object_store(rendered: dict[str, Rendered]) -> None:
    spec = pod_spec(rendered["prod"].one("Deployment", f"{RELEASE}-tierroute-large"))
    (init,) = spec["initContainers"]
    assert init["args"][-2:] == [
        "s3://tierroute-prod-models/meta-llama/Llama-3.3-70B-Instruct",
        "/models/meta-llama/Llama-3.3-70B-Instruct",
    ]
    volume = next(v for v in spec["volumes"] if v["name"] == "models")
    assert volume["emptyDir"]["sizeLimit"] == "300Gi"
    shm = next(v for v in spec["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Gi"}


def test_autoscaler_and_disruption_budgets_select_their_pods(rendered: dict[str, Rendered]) -> None:
    result = rendered["prod"]
    hpa = result.one("HorizontalPodAutoscaler", f"{RELEASE}-tierroute-router")
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{RELEASE}-tierroute-router"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 20)
    # The HPA owns the replica count.
    assert "replicas" not in result.one("Deployment", f"{RELEASE}-tierroute-router")["spec"]
    budgets = result.of_kind("PodDisruptionBudget")
    assert len(budgets) == 3
    for budget in budgets:
        deployment = result.one("Deployment", budget["metadata"]["name"])
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert matches(budget["spec"]["selector"]["matchLabels"], labels)


def test_service_monitors_scrape_every_component(rendered: dict[str, Rendered]) -> None:
    result = rendered["prod"]
    monitors = result.of_kind("ServiceMonitor")
    services = result.of_kind("Service")
    for service in services:
        labels = service["metadata"]["labels"]
        selecting = [m for m in monitors if matches(m["spec"]["selector"]["matchLabels"], labels)]
        assert len(selecting) == 1, service["metadata"]["name"]
        assert "metrics" in {p["name"] for p in service["spec"]["ports"]}
        assert selecting[0]["spec"]["endpoints"][0]["port"] == "metrics"


def test_rules_and_dashboards_come_from_the_observability_files(
    rendered: dict[str, Rendered],
) -> None:
    result = rendered["default"]
    rule_files = sorted((CHART / "files" / "rules").glob("*.yaml"))
    dashboards = sorted((CHART / "files" / "dashboards").glob("*.json"))
    rules = result.of_kind("PrometheusRule")
    assert len(rules) == len(rule_files)
    for path in rule_files:
        rule = result.one("PrometheusRule", f"{RELEASE}-tierroute-{path.stem}")
        assert rule["spec"]["groups"] == yaml.safe_load(path.read_text())["groups"]
    config_maps = [
        c for c in result.of_kind("ConfigMap") if "grafana_dashboard" in c["metadata"]["labels"]
    ]
    assert len(config_maps) == len(dashboards)
    for path in dashboards:
        (config_map,) = [c for c in config_maps if path.name in c["data"]]
        assert json.loads(config_map["data"][path.name]) == json.loads(path.read_text())
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_chart_renders_without_observability_files(tools: DeployTools, tmp_path: Path) -> None:
    chart = tmp_path / "tierroute"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("files"))
    result = render(tools, chart=chart)
    assert result.of_kind("PrometheusRule") == []
    assert [c["metadata"]["name"] for c in result.of_kind("ConfigMap")] == [
        f"{RELEASE}-tierroute-router"
    ]
    assert len(result.of_kind("ServiceMonitor")) == 2


def test_chart_renders_sample_observability_files(tools: DeployTools, tmp_path: Path) -> None:
    chart = tmp_path / "tierroute"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("files"))
    (chart / "files" / "rules").mkdir(parents=True)
    (chart / "files" / "dashboards").mkdir(parents=True)
    group = {
        "name": "g",
        "rules": [{"alert": "A", "expr": "up == 0", "labels": {"severity": "page"}}],
    }
    (chart / "files" / "rules" / "alerts.yaml").write_text(yaml.safe_dump({"groups": [group]}))
    (chart / "files" / "dashboards" / "My_Board.json").write_text('{"title": "x", "panels": []}')
    result = render(tools, chart=chart)
    assert result.one("PrometheusRule", f"{RELEASE}-tierroute-alerts")["spec"]["groups"] == [group]
    board = result.one("ConfigMap", f"{RELEASE}-tierroute-dashboard-my-board")
    assert json.loads(board["data"]["My_Board.json"]) == {"title": "x", "panels": []}


def test_existing_secret_is_mounted_read_only_into_the_router(tools: DeployTools) -> None:
    result = render(tools, overrides={"router": {"existingSecret": "tierroute-api-keys"}})
    spec = pod_spec(result.one("Deployment", f"{RELEASE}-tierroute-router"))
    volume = next(v for v in spec["volumes"] if v["name"] == "secrets")
    assert volume["secret"]["secretName"] == "tierroute-api-keys"
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "secrets")
    assert mount["readOnly"] is True
    assert "secrets" not in {
        v["name"]
        for v in pod_spec(render(tools).one("Deployment", f"{RELEASE}-tierroute-router"))["volumes"]
    }


def test_router_config_changes_roll_the_router(
    tools: DeployTools, rendered: dict[str, Rendered]
) -> None:
    changed = render(
        tools, overrides={"router": {"config": {"policy": {"fallback_threshold": 0.5}}}}
    )

    def checksum(result: Rendered) -> str:
        deployment = result.one("Deployment", f"{RELEASE}-tierroute-router")
        value: str = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    assert checksum(changed) != checksum(rendered["default"])
    assert router_config(changed)["policy"]["fallback_threshold"] == 0.5


def test_openai_endpoint_sidecar(tools: DeployTools, tmp_path: Path) -> None:
    # Without prod's TLS: the endpoint dials its router in plaintext (TLS: the security tests).
    plaintext = {"peerAuth": {"mode": "none"}, "tls": {"enabled": False}}
    overrides = {"router": {"openai": {"enabled": True}}, "security": plaintext}
    result = render(tools, "prod", overrides=overrides)
    deployment = result.one("Deployment", f"{RELEASE}-tierroute-router")
    spec = pod_spec(deployment)
    router, openai = spec["containers"]
    assert (router["name"], openai["name"]) == ("router", "openai")
    assert openai["command"] == ["python", "-m", "openai_gateway"]
    # It calls its own router over loopback; the argument list is one the endpoint accepts.
    from openai_gateway.__main__ import parse_args

    args = parse_args(openai["args"])
    assert (args.router, args.host, args.port) == ("127.0.0.1:50051", "0.0.0.0", 8080)
    assert "--router-ca-file" not in openai["args"]
    assert openai["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert openai["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert openai["securityContext"]["readOnlyRootFilesystem"] is True
    service = result.one("Service", f"{RELEASE}-tierroute-router")
    assert {"name": "http", "port": 8080} in [
        {"name": p["name"], "port": p["port"]} for p in service["spec"]["ports"]
    ]
    policy = result.one("NetworkPolicy", f"{RELEASE}-tierroute-router")
    assert [p["port"] for p in policy["spec"]["ingress"][0]["ports"]] == [50051, 8080]
    monitor = result.one("ServiceMonitor", f"{RELEASE}-tierroute-router")
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics", "http"]
    # Still valid and policy-clean with the extra container.
    path = write_objects(core_objects(result), tmp_path / "openai.yaml")
    validate = [tools.binary("kubernetes-validate"), "-k", KUBERNETES_VERSIONS[0], "--strict"]
    assert tools.run([*validate, str(path)]).returncode == 0
    checkov = [tools.binary("checkov"), "--framework", "kubernetes", "-f", str(path)]
    checkov += ["--skip-download", "--skip-check", ",".join(sorted(CHECKOV_SKIPS)), "-o", "json"]
    report = json.loads(tools.run(checkov).stdout)
    assert report["results"]["failed_checks"] == []
