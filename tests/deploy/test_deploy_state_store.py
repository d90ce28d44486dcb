"""The router state's Redis, offline: ElastiCache in Terraform and the chart's Redis wiring.

Terraform (prod): one replication group in the VPC's private subnets, TLS in transit, encrypted
at rest with the environment's key, an AUTH token kept in Secrets Manager, reachable from the
VPC only; its endpoint and token reach the release. Chart: the router's egress to Redis, the
dev Redis reachable from the router only, and an existing Redis's URL, auth and CA wired.
"""

from __future__ import annotations

import pytest
import yaml

from tests.deploy.helpers import DeployTools, Rendered, render
from tests.deploy.test_deploy_terraform import Parsed, blocks, hcl, resources, tfvars

__all__ = ["hcl"]  # the module-scoped fixture, shared


def test_elasticache_is_encrypted_private_and_authenticated(hcl: Parsed) -> None:
    (group,) = resources(hcl, "aws_elasticache_replication_group")
    body = group[2]
    assert body["transit_encryption_enabled"] is True
    assert body["transit_encryption_mode"] == "required"
    assert body["at_rest_encryption_enabled"] is True
    assert body["kms_key_id"] == "${var.kms_key_arn}"
    assert body["auth_token"] == "${random_password.auth.result}"
    assert body["automatic_failover_enabled"] is True and body["multi_az_enabled"] is True
    assert body["snapshot_retention_limit"] == "${var.snapshot_retention_days}"
    (secret,) = resources(hcl, "aws_secretsmanager_secret")
    assert secret[2]["kms_key_id"] == "${var.kms_key_arn}"
    (version,) = resources(hcl, "aws_secretsmanager_secret_version")
    assert version[2]["secret_string"] == "${random_password.auth.result}"
    (subnets,) = resources(hcl, "aws_elasticache_subnet_group")
    assert subnets[2]["subnet_ids"] == "${var.subnet_ids}"
    (ingress,) = resources(hcl, "aws_vpc_security_group_ingress_rule")
    assert ingress[2]["from_port"] == ingress[2]["to_port"] == 6379
    assert ingress[2]["cidr_ipv4"] == "${each.value}"


def test_the_stack_passes_the_endpoint_and_token_to_the_release(hcl: Parsed) -> None:
    modules = {name: b for _, name, b in blocks(hcl, "module", "modules/stack/")}
    call = modules["state_store"]
    assert call["subnet_ids"] == "${module.network.private_subnet_ids}"
    assert call["client_cidr_blocks"] == ["${var.vpc_cidr}"]
    assert call["kms_key_arn"] == "${aws_kms_key.platform.arn}"
    (platform,) = [
        b for _, name, b in blocks(hcl, "module", "modules/stack/") if name == "platform"
    ]
    assert "module.state_store[0].url" in platform["state_redis_url"]
    assert "module.state_store[0].auth_token" in platform["state_redis_token"]
    secrets = {name: body for _, name, body in resources(hcl, "kubernetes_secret_v1")}
    assert secrets["redis_auth"]["metadata"][0]["name"] == "tierroute-redis-auth"
    assert tfvars(hcl, "prod")["state_store"]["enabled"] is True
    assert tfvars(hcl, "dev")["state_store"]["enabled"] is False  # dev: the chart's dev Redis


def _router_egress(rendered: Rendered) -> list[dict[str, object]]:
    policy = rendered.one("NetworkPolicy", "tr-tierroute-router")
    egress: list[dict[str, object]] = policy["spec"]["egress"]
    return egress


def _state(rendered: Rendered) -> dict[str, object]:
    config = rendered.one("ConfigMap", "tr-tierroute-router")
    state: dict[str, object] = yaml.safe_load(config["data"]["router.yaml"]).get("state", {})
    return state


def test_dev_runs_its_own_redis_reachable_from_the_router_only(
    rendered: dict[str, Rendered],
) -> None:
    dev = rendered["dev"]
    assert _state(dev)["url"] == "redis://tr-tierroute-redis.tierroute.svc.cluster.local:6379/0"
    redis_rule = _router_egress(dev)[-1]
    assert redis_rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    labels = redis_rule["to"][0]["podSelector"]["matchLabels"]  # type: ignore[index]
    assert labels["app.kubernetes.io/component"] == "redis"
    policy = dev.one("NetworkPolicy", "tr-tierroute-redis")
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "router"
    assert policy["spec"]["egress"] == []
    names = [d["metadata"]["name"] for d in rendered["default"].of_kind("Deployment")]
    assert names and not [n for n in names if n.endswith("redis")]  # off by default


def test_prod_points_at_an_existing_redis_with_tls_and_auth(rendered: dict[str, Rendered]) -> None:
    prod = rendered["prod"]
    state = _state(prod)
    assert str(state["url"]).startswith("rediss://")
    assert state["password_file"] == "/etc/tierroute-state/auth/auth-token"
    assert state["budget_fail"] == "closed"
    router = prod.one("Deployment", "tr-tierroute-router")
    volumes = {v["name"]: v for v in router["spec"]["template"]["spec"]["volumes"]}
    assert volumes["state-auth"]["secret"]["secretName"] == "tierroute-redis-auth"
    assert _router_egress(prod)[-1]["to"] == [{"ipBlock": {"cidr": "10.30.0.0/16"}}]


def test_the_dev_redis_probes_itself_and_runs_unprivileged(rendered: dict[str, Rendered]) -> None:
    redis = rendered["dev"].one("Deployment", "tr-tierroute-redis")
    spec = redis["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"][:1] == ["redis-cli"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["automountServiceAccountToken"] is False


def test_an_existing_redis_with_a_private_ca(tools: DeployTools) -> None:
    out = render(
        tools,
        overrides={
            "state": {
                "backend": "redis",
                "redis": {"url": "rediss://redis.example:6380/1", "caSecret": "redis-ca"},
            }
        },
    )
    state = _state(out)
    assert state["tls"] == {"ca_file": "/etc/tierroute-state/ca/ca.crt"}
    assert "password_file" not in state
    assert _router_egress(out)[-1] == {"ports": [{"port": 6379, "protocol": "TCP"}]}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"state": {"backend": "redis"}}, "needs state.redis.url"),
        ({"state": {"backend": "valkey"}}, "/state/backend"),
        ({"state": {"redis": {"url": "http://x"}}}, "/state/redis/url"),
    ],
)
def test_bad_state_values_are_refused(
    tools: DeployTools, overrides: dict[str, object], message: str
) -> None:
    from tests.deploy.helpers import render_error

    assert message in render_error(tools, overrides)
