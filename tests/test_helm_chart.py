"""The Helm chart (helm/fleetgate), rendered offline by Helm's own engine.

Every scenario (the defaults, a deploy/ config layered in, the examples, every
toggle on, external Redis) must lint cleanly, render objects that Kubernetes'
schemas accept (and KubeRay's CRD for the RayCluster), and render a fleetgate
config that fleetgate's own config model accepts. The values schema must refuse
bad values, and the chart must ship deploy/'s rules and dashboards unchanged.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import helm_python
import httpx
import kubernetes_validate
import openai
import pytest
import redis
import yaml

from fleetgate.core.config import (
    FleetgateConfig,
    ModelConfig,
    RayConfig,
    RedisConfig,
    ReplicaDefaults,
    RouterConfig,
    SandboxConfig,
    ScalingConfig,
    SimConfig,
    ToolsConfig,
    TracingConfig,
    WebSearchConfig,
    load_config,
)
from fleetgate.core.local_processes import free_port
from fleetgate.core.replica_auth import call_metadata
from fleetgate.core.toolbox_registry import ToolboxRecord
from fleetgate.replicas.scaling import initial_replicas
from fleetgate.router.metrics import IN_FLIGHT
from fleetgate.v1 import toolbox_pb2 as pb
from fleetgate.v1 import toolbox_pb2_grpc as pb_grpc
from helm_chart import (  # tests/ is on sys.path
    CHART,
    CUSTOM_KINDS,
    KUBERAY_CRD,
    REPO,
    Obj,
    Rendered,
    container,
    copy_chart_only,
    env_by_name,
    prepare_chart,
    render,
    validate_kubernetes_object,
    validate_pod_template,
    validate_raycluster,
    values_from_files,
    volume_by_name,
)
from router_process import RouterProcess  # tests/ is on sys.path

DEPLOY = REPO / "deploy"
RULE_FILES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
DASHBOARD_FILES = sorted((DEPLOY / "grafana").glob("*.json"))
GPT_OSS = DEPLOY / "examples" / "h100-gpt-oss-120b.yaml"
TP2_QWEN = DEPLOY / "examples" / "tp2-qwen.yaml"
RELEASE, NAMESPACE = "fg", "llm"
FULLNAME = f"{RELEASE}-fleetgate"


@dataclass(frozen=True)
class Scenario:
    files: tuple[Path, ...] = ()
    overrides: dict[str, Any] = field(default_factory=dict)
    # The deploy/ fleetgate config layered in, whose models the chart must serve unchanged.
    fleetgate_config: Path | None = None


EVERYTHING_ON = {
    "routerDeployment": {
        "autoscaling": {"enabled": True, "cpu": {"enabled": True}, "inFlight": {"enabled": True}},
        "podDisruptionBudget": {"minAvailable": 1},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "hosts": [{"host": "llm.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
            "tls": [{"secretName": "llm-tls", "hosts": ["llm.example.com"]}],
        },
    },
    "bootstrapKey": {"existingSecret": "team-bootstrap-key"},
    "sealingSecret": {"existingSecret": "team-sealing"},
    "replicaToken": {"existingSecret": "team-replica-token"},
    "redisServer": {"auth": {"existingSecret": "redis-auth"}},
    "huggingface": {"tokenSecret": {"name": "hf-token"}},
    "modelCache": {"type": "hostPath"},
    "rayCluster": {"upgradeStrategy": "Recreate"},
    "tracing": {"enabled": True, "sample_ratio": 0.25},
    "tracingCollector": {"nodeAgent": True, "headersSecret": {"name": "otel-headers"}},
    "toolbox": {"enabled": True, "sandboxAccess": "privileged", "replicas": 3},
    "monitoring": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "podMonitor": {"enabled": True},
        # deploy/'s files may not exist (yet): the parts that ship them are on only when they do.
        "prometheusRule": {"enabled": bool(RULE_FILES)},
        "grafanaDashboards": {"enabled": bool(DASHBOARD_FILES)},
    },
}

SCENARIOS = {
    "default": Scenario(),
    "local-sim": Scenario(files=(DEPLOY / "local-sim.yaml",), fleetgate_config=DEPLOY / "local-sim.yaml"),
    "gpt-oss-120b-h100": Scenario(
        files=(GPT_OSS, CHART / "examples" / "gpt-oss-120b-h100.yaml"), fleetgate_config=GPT_OSS
    ),
    "tp2": Scenario(files=(TP2_QWEN, CHART / "examples" / "tp2.yaml"), fleetgate_config=TP2_QWEN),
    "everything-on": Scenario(
        files=(GPT_OSS, CHART / "examples" / "gpt-oss-120b-h100.yaml"),
        overrides=EVERYTHING_ON,
        fleetgate_config=GPT_OSS,
    ),
    # The elastic fleet: a sim model scaling 0..4 and a GPU model 0..2, KubeRay's autoscaler on.
    "elastic": Scenario(overrides={"models": [
        {"name": "sim", "engine": "sim", "replicas": 1, "scaling": {"min_replicas": 0, "max_replicas": 4}},
        {"name": "big", "engine": "vllm", "model": "org/big", "gpus_per_replica": 1, "replicas": 0,
         "scaling": {"max_replicas": 2, "idle_ttl_seconds": 900}},
    ]}),
    # Server-side tools: toolbox pods in their own user namespace, a web-search backend and an MCP allowlist.
    "toolbox": Scenario(overrides={
        "toolbox": {"enabled": True, "workRoot": {"sizeLimit": "2Gi"}},
        "tools": {"mcp_allowed_urls": ["https://mcp.example.com/"], "max_iterations": 4,
                  "sandbox": {"memory_mb": 512},
                  "web_search": {"backend": "searxng", "searxng_url": "http://searxng.search:8080"}},
    }),
    "external-redis-url": Scenario(overrides={"redis": {"url": "redis://shared-redis.infra:6379/3"}}),
    "external-redis-secret": Scenario(
        overrides={
            "redisUrlSecret": {"name": "redis-url"},
            "modelCache": {"type": "pvc", "pvc": {"existingClaim": "models"}},
        }
    ),
}


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_chart(tmp_path_factory.mktemp("chart"))


@pytest.fixture(scope="module")
def rendered(chart: Path) -> dict[str, Rendered]:
    return {name: render(chart, values_of(s), release=RELEASE, namespace=NAMESPACE) for name, s in SCENARIOS.items()}


def values_of(scenario: Scenario) -> dict[str, Any]:
    return values_from_files(scenario.files, scenario.overrides)


def rendered_config(r: Rendered) -> FleetgateConfig:
    config_map = r.named("ConfigMap", f"{FULLNAME}-config")
    return FleetgateConfig.model_validate(yaml.safe_load(config_map["data"]["config.yaml"]))


def worker_groups(r: Rendered) -> dict[str, dict[str, Any]]:
    return {g["groupName"]: g for g in r.one("RayCluster")["spec"].get("workerGroupSpecs", [])}


def render_with(chart: Path, overrides: dict[str, Any]) -> Rendered:
    return render(chart, overrides, release=RELEASE, namespace=NAMESPACE)


# --- every scenario -----------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_chart_lints_without_warnings(chart: Path, scenario: str) -> None:
    report = helm_python.lint(chart, values_of(SCENARIOS[scenario]), strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == []


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_object_passes_its_schema(rendered: dict[str, Rendered], scenario: str) -> None:
    r = rendered[scenario]
    assert r.objects
    for obj in r.objects:
        if obj["kind"] in CUSTOM_KINDS:
            with pytest.raises(kubernetes_validate.utils.SchemaNotFoundError):
                kubernetes_validate.validate(obj, "1.27.0", strict=True)
            continue
        validate_kubernetes_object(obj)
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE


@pytest.mark.skipif(not KUBERAY_CRD.exists(), reason=f"KubeRay CRD not found at {KUBERAY_CRD}")
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_raycluster_passes_kuberay_crd_and_pod_schemas(rendered: dict[str, Rendered], scenario: str) -> None:
    cluster = rendered[scenario].one("RayCluster")
    validate_raycluster(cluster)
    spec = cluster["spec"]
    validate_pod_template(spec["headGroupSpec"]["template"])
    for group in spec.get("workerGroupSpecs", []):
        validate_pod_template(group["template"])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rendered_config_is_a_valid_fleetgate_config(rendered: dict[str, Rendered], scenario: str) -> None:
    config = rendered_config(rendered[scenario])
    assert config.router.host == "0.0.0.0"
    assert config.ray.address == "auto"
    assert config.models, "a chart that serves no model"
    source = SCENARIOS[scenario].fleetgate_config
    if source is not None:
        # What deploy/ defines is served exactly: the chart adds only the cluster's addresses.
        expected = load_config(source, environ={})
        assert config.models == expected.models
        assert config.router.auth == expected.router.auth
    else:
        assert config.router.auth is True


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_one_worker_group_per_model_with_its_gpus(rendered: dict[str, Rendered], scenario: str) -> None:
    r = rendered[scenario]
    config = rendered_config(r)
    groups = worker_groups(r)
    assert len(groups) == len(config.models)
    for model in config.models:
        (group,) = [
            g for g in groups.values() if g["template"]["metadata"]["annotations"]["fleetgate.io/model"] == model.name
        ]
        if model.scaling is None:
            assert group["replicas"] == group["minReplicas"] == group["maxReplicas"] == model.replicas
        else:  # the autoscaler moves the pods between the model's bounds
            assert (group["minReplicas"], group["maxReplicas"]) == (model.scaling.min_replicas,
                                                                    model.scaling.max_replicas)
            assert group["replicas"] == initial_replicas(model)
        pod = group["template"]
        worker = container(pod, "ray-worker")
        limits = worker["resources"]["limits"]
        volumes = volume_by_name(pod)
        assert volumes["shared-mem"]["emptyDir"]["medium"] == "Memory"
        assert {m["mountPath"] for m in worker["volumeMounts"]} >= {"/dev/shm", "/etc/fleetgate", "/models"}
        if model.gpus_per_replica:
            assert limits["nvidia.com/gpu"] == model.gpus_per_replica
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
        else:
            assert "nvidia.com/gpu" not in limits
            assert group["rayStartParams"] == {"num-cpus": "1"}


# --- the head, the routers, Redis ---------------------------------------------------


def test_kuberay_autoscaler_runs_when_a_model_scales(rendered: dict[str, Rendered], chart: Path) -> None:
    spec = rendered["elastic"].one("RayCluster")["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["autoscalerOptions"]["idleTimeoutSeconds"] == 60
    assert spec["autoscalerOptions"]["resources"]["limits"]["cpu"] == "1"
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert (groups["big"]["minReplicas"], groups["big"]["maxReplicas"], groups["big"]["replicas"]) == (0, 2, 0)
    assert "enableInTreeAutoscaling" not in rendered["default"].one("RayCluster")["spec"]
    forced = render_with(chart, {"rayCluster": {"autoscaler": {"enabled": False}},
                                 "models": [{"name": "sim", "engine": "sim", "scaling": {"max_replicas": 2}}]})
    assert "enableInTreeAutoscaling" not in forced.one("RayCluster")["spec"]
    # The router HPA keeps scaling on the routers' in-flight requests beside it.
    both = render_with(chart, {**EVERYTHING_ON, "models": [{"name": "sim", "engine": "sim",
                                                            "scaling": {"max_replicas": 2}}]})
    hpa = both.named("HorizontalPodAutoscaler", f"{FULLNAME}-router")
    assert {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"} == {
        "fleetgate_requests_in_flight"}
    assert both.one("RayCluster")["spec"]["enableInTreeAutoscaling"] is True


def test_head_starts_ray_then_execs_the_controller(rendered: dict[str, Rendered]) -> None:
    head = rendered["default"].one("RayCluster")["spec"]["headGroupSpec"]
    ray_head = container(head["template"], "ray-head")
    script = ray_head["args"][0].splitlines()
    assert ray_head["command"] == ["/bin/bash", "-c", "--"]
    (start,) = [line for line in script if line.startswith("ray start --head")]
    assert "--port='6379'" in start and "--num-cpus='0'" in start and "--block" not in start
    assert script[-1] == "exec fleetgate controller --config /etc/fleetgate/config.yaml --ray-address auto"
    assert head["template"]["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true"
    assert head["rayStartParams"]["port"] == "6379"


def test_gpt_oss_replicas_land_on_h100_nodes_one_gpu_each(rendered: dict[str, Rendered]) -> None:
    r = rendered["gpt-oss-120b-h100"]
    (group,) = worker_groups(r).values()
    pod = group["template"]
    assert group["groupName"] == "gpt-oss-120b" and group["replicas"] == 4
    assert container(pod, "ray-worker")["resources"]["limits"]["nvidia.com/gpu"] == 1
    (term,) = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    (expression,) = term["matchExpressions"]
    assert expression["key"] == "nvidia.com/gpu.product" and "NVIDIA-H100-80GB-HBM3" in expression["values"]
    assert volume_by_name(pod)["model-cache"]["persistentVolumeClaim"]["claimName"] == f"{FULLNAME}-model-cache"
    assert r.named("PersistentVolumeClaim", f"{FULLNAME}-model-cache")["spec"]["accessModes"] == ["ReadWriteMany"]


def test_tp2_replicas_get_two_gpus_and_the_hf_token(rendered: dict[str, Rendered]) -> None:
    (group,) = worker_groups(rendered["tp2"]).values()
    worker = container(group["template"], "ray-worker")
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert worker["resources"]["requests"]["nvidia.com/gpu"] == 2
    token = env_by_name(worker)["HF_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token == {"name": "hf-token", "key": "token", "optional": True}
    assert env_by_name(worker)["HF_HOME"]["value"] == "/models/huggingface"


def test_router_deployment_serves_with_probes_and_the_bootstrap_key(rendered: dict[str, Rendered]) -> None:
    r = rendered["default"]
    deployment = r.named("Deployment", f"{FULLNAME}-router")
    router = container(deployment["spec"]["template"], "router")
    assert router["command"] == ["fleetgate", "router", "--config", "/etc/fleetgate/config.yaml"]
    assert router["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert router["livenessProbe"]["httpGet"]["path"] == "/health"
    assert router["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    key_ref = env_by_name(router)["FLEETGATE_BOOTSTRAP_KEY"]["valueFrom"]["secretKeyRef"]
    secret = r.named("Secret", key_ref["name"])
    key = base64.b64decode(secret["data"][key_ref["key"]]).decode()
    assert re.fullmatch(r"sk-fg-[A-Za-z0-9]{48}", key)
    sealing_ref = env_by_name(router)["FLEETGATE_ROUTER__SEALING_SECRET"]["valueFrom"]["secretKeyRef"]
    sealing = r.named("Secret", sealing_ref["name"])
    assert sealing_ref["name"] == f"{FULLNAME}-sealing"
    assert re.fullmatch(r"[A-Za-z0-9]{64}", base64.b64decode(sealing["data"][sealing_ref["key"]]).decode())
    assert sealing["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert r.named("Service", f"{FULLNAME}-router")["spec"]["ports"][0]["targetPort"] == "http"
    assert r.named("PodDisruptionBudget", f"{FULLNAME}-router")["spec"]["maxUnavailable"] == 1
    assert deployment["spec"]["replicas"] == 2
    assert not r.of_kind("HorizontalPodAutoscaler") and not r.of_kind("Ingress")


def test_router_autoscales_on_cpu_and_in_flight_requests(rendered: dict[str, Rendered]) -> None:
    r = rendered["everything-on"]
    hpa = r.named("HorizontalPodAutoscaler", f"{FULLNAME}-router")
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    # The custom metric is the router's own in-flight gauge.
    assert metrics["Pods"]["pods"]["metric"]["name"] == IN_FLIGHT._name == "fleetgate_requests_in_flight"
    assert "replicas" not in r.named("Deployment", f"{FULLNAME}-router")["spec"]
    assert r.named("PodDisruptionBudget", f"{FULLNAME}-router")["spec"] == {
        "minAvailable": 1,
        "selector": r.named("Deployment", f"{FULLNAME}-router")["spec"]["selector"],
    }
    ingress = r.named("Ingress", f"{FULLNAME}-router")
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == f"{FULLNAME}-router"
    # Existing bootstrap, sealing and replica-token Secrets: the chart creates none and points the router at them.
    assert not r.of_kind("Secret")
    router = container(r.named("Deployment", f"{FULLNAME}-router")["spec"]["template"], "router")
    env = env_by_name(router)
    assert env["FLEETGATE_BOOTSTRAP_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "team-bootstrap-key"
    assert env["FLEETGATE_ROUTER__SEALING_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "team-sealing"


def fleetgate_pods(r: Rendered, *, toolbox: bool = False) -> list[Obj]:
    """The pod templates that run fleetgate code: the router, the Ray head and every Ray worker group (and with
    ``toolbox``, the toolbox pods, which must be there)."""
    cluster = r.one("RayCluster")["spec"]
    pods = [r.named("Deployment", f"{FULLNAME}-router")["spec"]["template"], cluster["headGroupSpec"]["template"]]
    pods += [g["template"] for g in cluster["workerGroupSpecs"]]
    return pods + [r.named("Deployment", f"{FULLNAME}-toolbox")["spec"]["template"]] if toolbox else pods


@pytest.mark.parametrize(("values", "secret_name"), [("default", f"{FULLNAME}-replica-token"),
                                                    ("everything-on", "team-replica-token")])
def test_replica_token_reaches_routers_and_replicas(
    rendered: dict[str, Rendered], values: str, secret_name: str
) -> None:
    r = rendered[values]
    for pod in fleetgate_pods(r, toolbox=values == "everything-on"):
        ref = env_by_name(pod["spec"]["containers"][0])["FLEETGATE_REPLICA__AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": secret_name, "key": "replica-token"}
    if values == "default":
        secret = r.named("Secret", secret_name)
        assert re.fullmatch(r"[A-Za-z0-9]{48}", base64.b64decode(secret["data"]["replica-token"]).decode())


def test_tracing_reaches_routers_and_replicas(rendered: dict[str, Rendered]) -> None:
    """With tracing on, every fleetgate pod exports to its own node's collector agent with the headers' Secret,
    and the config turns tracing on; off (the default), no pod gets any of it."""
    r = rendered["everything-on"]
    assert rendered_config(r).tracing == TracingConfig(enabled=True, sample_ratio=0.25)
    for pod in fleetgate_pods(r):
        env = env_by_name(pod["spec"]["containers"][0])
        assert env["HOST_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://$(HOST_IP):4318"
        assert env["FLEETGATE_TRACING__HEADERS"]["valueFrom"]["secretKeyRef"] == {"name": "otel-headers",
                                                                                  "key": "headers"}
        # $(VAR) expands only from variables defined before it.
        names = [e["name"] for e in pod["spec"]["containers"][0]["env"]]
        assert names.index("HOST_IP") < names.index("OTEL_EXPORTER_OTLP_ENDPOINT")
    default = rendered["default"]
    assert rendered_config(default).tracing.enabled is False
    for pod in fleetgate_pods(default):
        env = env_by_name(pod["spec"]["containers"][0])
        assert not {"HOST_IP", "OTEL_EXPORTER_OTLP_ENDPOINT", "FLEETGATE_TRACING__HEADERS"} & set(env)


def test_in_chart_redis_is_a_persistent_statefulset(rendered: dict[str, Rendered]) -> None:
    r = rendered["default"]
    statefulset = r.named("StatefulSet", f"{FULLNAME}-redis")
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert "--appendonly" in container(statefulset["spec"]["template"], "redis")["args"]
    service = r.named("Service", f"{FULLNAME}-redis")
    assert rendered_config(r).redis_url == f"redis://{service['metadata']['name']}:6379/0"


def test_redis_password_reaches_every_fleetgate_pod(rendered: dict[str, Rendered]) -> None:
    r = rendered["everything-on"]
    redis = container(r.named("StatefulSet", f"{FULLNAME}-redis")["spec"]["template"], "redis")
    assert redis["args"][-2:] == ["--requirepass", "$(REDIS_PASSWORD)"]
    for pod in fleetgate_pods(r, toolbox=True):
        env = env_by_name(pod["spec"]["containers"][0])
        assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "redis-auth"
        assert env["FLEETGATE_REDIS__URL"]["value"] == f"redis://:$(REDIS_PASSWORD)@{FULLNAME}-redis:6379/0"
        # $(VAR) expands only from variables defined before it.
        names = [e["name"] for e in pod["spec"]["containers"][0]["env"]]
        assert names.index("REDIS_PASSWORD") < names.index("FLEETGATE_REDIS__URL")


def test_external_redis_replaces_the_statefulset(rendered: dict[str, Rendered]) -> None:
    by_url = rendered["external-redis-url"]
    assert not by_url.of_kind("StatefulSet")
    assert rendered_config(by_url).redis_url == "redis://shared-redis.infra:6379/3"
    by_secret = rendered["external-redis-secret"]
    assert not by_secret.of_kind("StatefulSet")
    router = container(by_secret.named("Deployment", f"{FULLNAME}-router")["spec"]["template"], "router")
    assert env_by_name(router)["FLEETGATE_REDIS__URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "redis-url",
        "key": "url",
    }
    (group,) = worker_groups(by_secret).values()
    assert volume_by_name(group["template"])["model-cache"]["persistentVolumeClaim"]["claimName"] == "models"
    assert not by_secret.of_kind("PersistentVolumeClaim")


# --- the toolboxes (server-side tools) ------------------------------------------------

TOOLBOX = f"{FULLNAME}-toolbox"
# What the toolbox needs beyond root's uid in its user namespace (values.yaml toolbox.sandboxAccess).
TOOLBOX_CAPABILITIES = ["SETUID", "SETGID", "CHOWN", "DAC_OVERRIDE", "KILL"]


def toolbox_pod(r: Rendered) -> Obj:
    template: Obj = r.named("Deployment", TOOLBOX)["spec"]["template"]
    return template


def test_toolbox_pods_serve_the_tools_config_with_what_bubblewrap_needs(rendered: dict[str, Rendered]) -> None:
    r = rendered["toolbox"]
    config = rendered_config(r)
    # Routers and toolboxes read one config: tools on, the values' settings kept, work_root on the pods' volume.
    assert config.tools.enabled is True
    assert config.tools.mcp_allowed_urls == ["https://mcp.example.com/"] and config.tools.max_iterations == 4
    assert config.tools.sandbox.memory_mb == 512 and config.tools.web_search.backend == "searxng"
    assert config.tools.sandbox.work_root == "/var/lib/fleetgate/toolbox"
    deployment = r.named("Deployment", TOOLBOX)
    assert deployment["spec"]["replicas"] == 2
    pod = toolbox_pod(r)
    toolbox = container(pod, "toolbox")
    assert toolbox["image"] == "fleetgate/toolbox:0.1.0"
    assert toolbox["command"] == ["fleetgate", "toolbox", "--config", "/etc/fleetgate/config.yaml",
                                  "--port", str(config.tools.base_port), "--toolbox-id", "$(POD_NAME)"]
    assert toolbox["ports"] == [{"name": "grpc", "containerPort": config.tools.base_port, "protocol": "TCP"}]
    env = env_by_name(toolbox)
    # Each pod binds and registers its own pod IP ($(VAR) expands only from variables defined before it).
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["FLEETGATE_TOOLS__HOST"]["value"] == "$(POD_IP)"
    names = [e["name"] for e in toolbox["env"]]
    assert names.index("POD_IP") < names.index("FLEETGATE_TOOLS__HOST")
    assert env["FLEETGATE_REPLICA__AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{FULLNAME}-replica-token", "key": "replica-token"}
    mounts = {m["name"]: m["mountPath"] for m in toolbox["volumeMounts"]}
    assert mounts == {"config": "/etc/fleetgate", "work": config.tools.sandbox.work_root, "tmp": "/tmp"}
    assert volume_by_name(pod)["work"]["emptyDir"] == {"sizeLimit": "2Gi"}
    # The pod restarts with the config, as the routers do.
    router_pod = r.named("Deployment", f"{FULLNAME}-router")["spec"]["template"]
    assert pod["metadata"]["annotations"]["checksum/config"] == router_pod["metadata"]["annotations"]["checksum/config"]
    # userNamespace: root only in the pod's own user namespace, just the capabilities the toolbox uses, and
    # seccomp, AppArmor and /proc open to bwrap's unshare and mounts.
    assert pod["spec"]["hostUsers"] is False
    assert pod["spec"]["securityContext"] == {"runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False,
                                              "seccompProfile": {"type": "Unconfined"}}
    assert toolbox["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "procMount": "Unmasked",
        "capabilities": {"drop": ["ALL"], "add": TOOLBOX_CAPABILITIES}}
    assert pod["metadata"]["annotations"]["container.apparmor.security.beta.kubernetes.io/toolbox"] == "unconfined"
    # privileged: for clusters without user namespaces.
    privileged = toolbox_pod(rendered["everything-on"])
    assert rendered["everything-on"].named("Deployment", TOOLBOX)["spec"]["replicas"] == 3
    assert container(privileged, "toolbox")["securityContext"] == {"privileged": True, "readOnlyRootFilesystem": True}
    assert "hostUsers" not in privileged["spec"]
    assert not any("apparmor" in a for a in privileged["metadata"]["annotations"])
    assert rendered_config(rendered["everything-on"]).tools.enabled is True
    assert f"kubectl -n {NAMESPACE} rollout status deploy/{TOOLBOX}" in r.notes
    assert TOOLBOX not in rendered["default"].notes


def test_toolboxes_are_off_by_default_and_render_nothing(rendered: dict[str, Rendered], chart: Path) -> None:
    for name, r in rendered.items():
        if name in ("toolbox", "everything-on"):
            continue
        assert not [o for o in r.objects if o["metadata"]["name"] == TOOLBOX], name
        raw = yaml.safe_load(r.named("ConfigMap", f"{FULLNAME}-config")["data"]["config.yaml"])
        assert "tools" not in raw and rendered_config(r).tools.enabled is False, name
    # tools settings alone change nothing: the config stays without tools, no object is added.
    quiet = render_with(chart, {"tools": {"max_iterations": 3, "sandbox": {"memory_mb": 256}}})
    default = rendered["default"]
    assert [(o["kind"], o["metadata"]["name"]) for o in quiet.objects] == [
        (o["kind"], o["metadata"]["name"]) for o in default.objects]
    config_name = f"{FULLNAME}-config"
    assert quiet.named("ConfigMap", config_name)["data"] == default.named("ConfigMap", config_name)["data"]


def expand_kubernetes_vars(value: str, env: dict[str, str]) -> str:
    """$(VAR) as the kubelet expands it in a container's command and env (from variables defined before)."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def toolbox_pod_env(r: Rendered, pod_name: str, overrides: dict[str, str]) -> dict[str, str]:
    """The toolbox container's environment as the kubelet would give it to a pod on loopback: field refs
    (its name, 127.0.0.1 as its IP), the rendered Secrets, then ``overrides`` (what a cluster decides)."""
    fields = {"metadata.name": pod_name, "status.podIP": "127.0.0.1"}
    env: dict[str, str] = {}
    for entry in container(toolbox_pod(r), "toolbox")["env"]:
        if "value" in entry:
            env[entry["name"]] = expand_kubernetes_vars(entry["value"], env)
        elif "fieldRef" in entry["valueFrom"]:
            env[entry["name"]] = fields[entry["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = base64.b64decode(r.named("Secret", ref["name"])["data"][ref["key"]]).decode()
    return {**env, **overrides}


@pytest.mark.skipif(shutil.which("bwrap") is None or shutil.which("setpriv") is None,
                    reason="bubblewrap and util-linux's setpriv are needed")
@pytest.mark.skipif(os.geteuid() != 0, reason="the toolbox starts as root to drop sandboxes to their own uids")
@pytest.mark.timeout(90)
def test_the_toolbox_pod_runs_sandboxes_with_only_the_charts_capabilities(
    rendered: dict[str, Rendered], tmp_path: Path, redis_url: str
) -> None:
    """The rendered config, command line, env and token run a real toolbox as root held to the container's
    capabilities (setpriv: bounding set, no_new_privs as allowPrivilegeEscalation: false): it registers the pod's
    name and IP, runs python and bash in bubblewrap as a sandbox uid, removes a finished session's directory
    (files the sandbox made private) and refuses a call without the token. Not covered: the user namespace,
    seccomp, AppArmor and procMount, which only a cluster gives."""
    r = rendered["toolbox"]
    pod_name = f"{TOOLBOX}-7d9f-x2k4q"
    toolbox = container(toolbox_pod(r), "toolbox")
    security = toolbox["securityContext"]
    config_path = tmp_path / "config.yaml"
    config_path.write_text(r.named("ConfigMap", f"{FULLNAME}-config")["data"]["config.yaml"])
    work_root = Path(tempfile.mkdtemp(prefix="fleetgate-chart-toolbox-", dir="/tmp"))
    work_root.chmod(0o777)  # as an emptyDir is
    port = free_port()
    env = toolbox_pod_env(r, pod_name, {
        "FLEETGATE_REDIS__URL": redis_url,  # the cluster's Redis, the work volume's path and a free port here
        "FLEETGATE_TOOLS__SANDBOX__WORK_ROOT": str(work_root),
        "FLEETGATE_TOOLS__SANDBOX__UID_BASE": "64000",  # apart from the other toolbox tests' uids
        "FLEETGATE_TOOLS__HEARTBEAT_SECONDS": "0.2",
    })
    command = [expand_kubernetes_vars(arg, env) for arg in toolbox["command"]]
    command[0] = str(Path(sys.executable).parent / "fleetgate")
    command[command.index("--port") + 1] = str(port)
    command[command.index("--config") + 1] = str(config_path)  # the ConfigMap, mounted at /etc/fleetgate
    caps = ",".join(f"+{c.lower()}" for c in security["capabilities"]["add"])
    held = ["setpriv", f"--bounding-set=-all,{caps}", "--inh-caps=-all", "--ambient-caps=-all"]
    if security["allowPrivilegeEscalation"] is False:
        held.append("--no-new-privs")
    store = redis.Redis.from_url(redis_url)
    process = subprocess.Popen([*held, "--", *command], env={**env, "PATH": os.environ["PATH"]},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while (stored := store.get(f"fleetgate:toolbox:{pod_name}")) is None:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the toolbox never registered"
            time.sleep(0.1)
        record = ToolboxRecord.model_validate_json(stored)
        assert record.address == f"127.0.0.1:{port}" and {"python", "bash"} <= set(record.tools)
        token = env["FLEETGATE_REPLICA__AUTH_TOKEN"]
        with grpc.insecure_channel(record.address) as channel:
            stub = pb_grpc.ToolboxStub(channel)

            def run(tool: str, arguments: dict[str, str], session: str) -> pb.ToolResult:
                request = pb.RunToolRequest(tool=tool, arguments_json=json.dumps(arguments), session_id=session,
                                            key_id="key-a")
                result: pb.ToolResult = stub.RunTool(request, metadata=call_metadata(token), timeout=30)
                return result

            python = run("python", {"code": "sum(range(10))"}, "s")
            assert (python.output, python.is_error) == ("45\n", False)
            bash = run("bash", {"command": "id -u; touch kept"}, "s")
            assert (bash.output, bash.is_error) == ("64000\n", False)
            private = run("bash", {"command": "mkdir -m 700 d && touch d/f && chmod 600 d/f && echo made"}, "")
            assert (private.output, private.is_error) == ("made\n", False)
            with pytest.raises(grpc.RpcError) as refused:
                stub.RunTool(pb.RunToolRequest(tool="bash", arguments_json='{"command": "true"}'), timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # The one-call session's directory is removed, its private files too; the kept session's stays.
        sandboxes = work_root / pod_name
        deadline = time.monotonic() + 10
        while len(remaining := list(sandboxes.iterdir())) != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(remaining) == 1, f"session directories left: {remaining}"
        kept = remaining[0]
        assert (kept / "kept").exists() and kept.stat().st_uid == 64000
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=20)[0]
        assert process.returncode == 0, output
        assert store.get(f"fleetgate:toolbox:{pod_name}") is None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(work_root, ignore_errors=True)


def test_notes_tell_how_to_get_a_key_and_call_the_endpoint(rendered: dict[str, Rendered]) -> None:
    notes = rendered["default"].notes
    assert (
        f"kubectl -n {NAMESPACE} exec deploy/{FULLNAME}-router -- \\\n"
        "       fleetgate keys create --name alice --config /etc/fleetgate/config.yaml"
    ) in notes
    assert f"get secret {FULLNAME}-bootstrap-key" in notes
    assert "/v1/chat/completions" in notes and '"model": "sim"' in notes
    assert "WARNING: router.auth is false" in rendered["local-sim"].notes


def wait_until_ready(base_url: str, timeout: float = 15.0) -> httpx.Response:
    """GET /ready until it answers 200 (the router has seen a healthy replica of every model) or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{base_url}/ready", timeout=5.0)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_the_rendered_config_and_key_serve_a_chat_completion(
    rendered: dict[str, Rendered], tmp_path: Path, redis_server: Any, replica_factory: Any
) -> None:
    """The chart's config file and bootstrap key run a real router and sim replica; only the
    addresses a cluster would give them change (the test's Redis, loopback instead of pod IPs)."""
    r = rendered["default"]
    config_path = tmp_path / "config.yaml"
    config_path.write_text(r.named("ConfigMap", f"{FULLNAME}-config")["data"]["config.yaml"])
    key = base64.b64decode(r.named("Secret", f"{FULLNAME}-bootstrap-key")["data"]["api-key"]).decode()
    loopback = {"FLEETGATE_REPLICA__HOST": "127.0.0.1", "FLEETGATE_ROUTER__HOST": "127.0.0.1"}
    replica_factory(model="sim", config=config_path, env=loopback)
    router_env = {**loopback, "FLEETGATE_BOOTSTRAP_KEY": key}
    with RouterProcess(config_path, redis_server.url, env=router_env, log_path=tmp_path / "router.log") as router:
        ready = wait_until_ready(router.base_url)
        assert ready.status_code == 200, ready.text
        with pytest.raises(openai.AuthenticationError):
            router.openai(api_key="sk-fg-not-a-key").models.list()
        client = router.openai(api_key=key)
        assert "sim" in [m.id for m in client.models.list()]
        reply = client.chat.completions.create(model="sim", messages=[{"role": "user", "content": "Hi"}], max_tokens=8)
        assert reply.choices[0].message.content
        assert reply.usage is not None and reply.usage.completion_tokens > 0


# --- monitoring: deploy/'s files, unchanged ------------------------------------------


def test_monitors_scrape_routers_and_replicas(rendered: dict[str, Rendered]) -> None:
    r = rendered["everything-on"]
    service_monitor = r.one("ServiceMonitor")
    router_service = r.named("Service", f"{FULLNAME}-router")
    assert service_monitor["spec"]["selector"]["matchLabels"].items() <= router_service["metadata"]["labels"].items()
    assert service_monitor["spec"]["endpoints"][0]["port"] == router_service["spec"]["ports"][0]["name"]
    assert service_monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    pod_monitor = r.one("PodMonitor")
    for group in worker_groups(r).values():
        labels = group["template"]["metadata"]["labels"]
        assert pod_monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ports = {p["name"] for p in container(group["template"], "ray-worker")["ports"]}
        assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] in ports
    # The replicas label every series with `replica` and `model` themselves: kept, never overwritten.
    endpoint = pod_monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["honorLabels"] is True
    assert not {r.get("targetLabel") for r in endpoint.get("relabelings", [])} & {"replica", "model"}


@pytest.mark.skipif(not RULE_FILES, reason="deploy/prometheus/rules/*.yml not there yet")
def test_prometheus_rules_are_deploys_rule_files_unchanged(rendered: dict[str, Rendered]) -> None:
    rules = rendered["everything-on"].of_kind("PrometheusRule")
    assert len(rules) == len(RULE_FILES)
    for rule, path in zip(rules, RULE_FILES, strict=True):
        assert rule["metadata"]["name"] == f"{FULLNAME}-{path.stem}"
        assert rule["spec"] == {"groups": yaml.safe_load(path.read_text())["groups"]}


@pytest.mark.skipif(not DASHBOARD_FILES, reason="deploy/grafana/*.json not there yet")
def test_dashboards_are_deploys_json_byte_for_byte(rendered: dict[str, Rendered]) -> None:
    config_maps = [c for c in rendered["everything-on"].of_kind("ConfigMap") if "-dashboard-" in c["metadata"]["name"]]
    assert len(config_maps) == len(DASHBOARD_FILES)
    # The chart lists no dashboard by name: a new file in deploy/grafana/ (usage.json) ships as one more ConfigMap.
    assert {"overview.json", "replicas.json", "usage.json"} <= {p.name for p in DASHBOARD_FILES}
    for config_map, path in zip(config_maps, DASHBOARD_FILES, strict=True):
        assert config_map["metadata"]["name"] == f"{FULLNAME}-dashboard-{path.stem}"
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["data"] == {path.name: path.read_text()}


@pytest.mark.parametrize("part", ["prometheusRule", "grafanaDashboards"])
def test_monitoring_without_make_chart_fails_with_the_hint(tmp_path: Path, part: str) -> None:
    bare = copy_chart_only(tmp_path)
    with pytest.raises(helm_python.HelmError, match="make chart"):
        render_with(bare, {"monitoring": {part: {"enabled": True}}})


# --- values: the schema refuses bad values, and mirrors fleetgate's config -------------


BAD_VALUES = {
    "negative router replicas": {"routerDeployment": {"replicas": -1}},
    "negative model replicas": {"models": [{"name": "sim", "engine": "sim", "replicas": -2}]},
    "negative gpus": {"models": [{"name": "m", "engine": "vllm", "model": "x", "gpus_per_replica": -1}]},
    "unknown engine": {"models": [{"name": "m", "engine": "tgi", "model": "x"}]},
    "vllm without a model": {"models": [{"name": "m", "engine": "vllm"}]},
    "port as a string": {"router": {"port": "8080"}},
    "replicas as a string": {"routerDeployment": {"replicas": "two"}},
    "unknown model field": {"models": [{"name": "sim", "engine": "sim", "gpus": 1}]},
    "unknown top-level key": {"routerReplicas": 3},
    "unknown sim field": {"models": [{"name": "sim", "engine": "sim", "sim": {"ttft": 5}}]},
    "error rate above 1": {"models": [{"name": "sim", "engine": "sim", "sim": {"error_rate": 1.5}}]},
    "negative min_replicas": {"models": [{"name": "sim", "engine": "sim", "scaling": {"min_replicas": -1}}]},
    "unknown scaling field": {"models": [{"name": "sim", "engine": "sim", "scaling": {"idle_ttl": 5}}]},
    "unknown model task": {"models": [{"name": "sim", "engine": "sim", "task": "classify"}]},
    "no embedding dimensions": {"models": [{"name": "sim", "engine": "sim", "sim": {"embedding_dimensions": 0}}]},
    "unknown model cache type": {"modelCache": {"type": "nfs"}},
    "bad pull policy": {"images": {"router": {"pullPolicy": "Sometimes"}}},
    "redis url without scheme": {"redis": {"url": "redis-host:6379"}},
    "bad upgrade strategy": {"rayCluster": {"upgradeStrategy": "Rolling"}},
    "head port is fixed": {"rayCluster": {"head": {"rayStartParams": {"port": "7000"}}}},
    "unknown sandbox access": {"toolbox": {"enabled": True, "sandboxAccess": "rootless"}},
    "unknown tools field": {"toolbox": {"enabled": True}, "tools": {"sandbox": {"memory": 512}}},
    "unknown web search backend": {"tools": {"web_search": {"backend": "bing"}}},
    "relative work root": {"toolbox": {"workRoot": {"mountPath": "work"}}},
}


@pytest.mark.parametrize("bad", BAD_VALUES)
def test_values_schema_rejects(chart: Path, bad: str) -> None:
    with pytest.raises(helm_python.HelmValuesError):
        render_with(chart, BAD_VALUES[bad])


BAD_SETUPS = {
    "worker settings for no model": ({"rayCluster": {"workerGroups": {"llama": {}}}}, "matches no model"),
    "two models, one group name": (
        {"models": [{"name": "a.b", "engine": "sim"}, {"name": "a-b", "engine": "sim"}]},
        "same worker group",
    ),
    "fewer CPUs than GPU bundles": (
        {"models": [{"name": "m", "engine": "vllm", "model": "x", "gpus_per_replica": 4}]},
        "CPU limit of at least 4",
    ),
    "tools on without toolboxes": ({"tools": {"enabled": True}}, "toolbox.enabled: true"),
    "autoscaling on nothing": (
        {"routerDeployment": {"autoscaling": {"enabled": True, "cpu": {"enabled": False}}}},
        "cpu.enabled or inFlight.enabled",
    ),
}


@pytest.mark.parametrize("bad", BAD_SETUPS)
def test_templates_refuse_setups_that_cannot_work(chart: Path, bad: str) -> None:
    overrides, message = BAD_SETUPS[bad]
    with pytest.raises(helm_python.HelmError, match=re.escape(message)):
        render_with(chart, overrides)


def _schema_section(schema: dict[str, Any], name: str) -> dict[str, Any]:
    section = schema["properties"].get(name) or schema["definitions"][name]
    return schema["definitions"][section["$ref"].rsplit("/", 1)[1]] if "$ref" in section else section


@pytest.mark.parametrize(
    ("section", "model"),
    [("redis", RedisConfig), ("router", RouterConfig), ("replica", ReplicaDefaults), ("ray", RayConfig),
     ("model", ModelConfig), ("sim", SimConfig), ("scaling", ScalingConfig), ("tracing", TracingConfig),
     ("tools", ToolsConfig), ("sandbox", SandboxConfig), ("webSearch", WebSearchConfig)],
)
def test_values_schema_mirrors_fleetgate_config(section: str, model: type) -> None:
    """Each config section of values.schema.json lists exactly the fields of its pydantic model,
    with the same choices: a field added to fleetgate/core/config.py must be added to the schema."""
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    properties = _schema_section(schema, section)["properties"]
    assert set(properties) == set(model.model_fields), (
        f"helm/fleetgate/values.schema.json {section} vs {model.__name__}"
    )
    for name, info in model.model_fields.items():
        if typing.get_origin(info.annotation) is typing.Literal:
            assert properties[name]["enum"] == list(typing.get_args(info.annotation)), name


# --- images --------------------------------------------------------------------------


# The folders of the repository that are packages of their own (setup.py ROOTS) and what each image's command is.
PACKAGE_FOLDERS = {"router": "fleetgate.router", "replicas": "fleetgate.replicas", "toolbox": "fleetgate.toolbox",
                   "loadtest": "fleetgate.loadtest"}
IMAGE_COMMANDS = [
    pytest.param("router.Dockerfile", ["router"]),
    pytest.param("replica.Dockerfile", ["controller"]),
    pytest.param("toolbox.Dockerfile", ["toolbox"]),
]


def copied_folders(dockerfile: str) -> set[str]:
    return set(re.findall(r"^COPY (\S+) \./\1$", dockerfile, re.MULTILINE))


@pytest.mark.parametrize(("dockerfile", "command"), IMAGE_COMMANDS)
def test_each_images_folders_start_its_command(dockerfile: str, command: list[str]) -> None:
    """``fleetgate <command> --help`` with only the folders the image copies: the others' packages cannot be
    imported, as in the image (setup.py leaves out a folder that is not there)."""
    absent = [PACKAGE_FOLDERS[f] for f in PACKAGE_FOLDERS if f not in copied_folders(
        (DEPLOY / "docker" / dockerfile).read_text())]
    script = ("import sys\n"
              f"for name in {absent!r}: sys.modules[name] = None\n"
              f"sys.argv = ['fleetgate', *{command!r}, '--help']\n"
              "from fleetgate.launcher.cli import main\n"
              "sys.exit(main())\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == 0 and "--config" in result.stdout, result.stderr[-2000:]


def test_the_toolbox_image_has_the_sandboxes_programs_and_runs_as_root() -> None:
    toolbox_file = (DEPLOY / "docker" / "toolbox.Dockerfile").read_text()
    assert {"fleetgate", "toolbox", "deploy/prometheus", "deploy/grafana"} <= copied_folders(toolbox_file)
    assert not {"replicas", "router", "loadtest"} & copied_folders(toolbox_file)
    assert re.search(r"^FROM python:3\.11-slim$", toolbox_file, re.MULTILINE)
    (packages,) = re.findall(r"apt-get install -y --no-install-recommends (.+?) \\$", toolbox_file, re.MULTILINE)
    assert set(packages.split()) == {"bubblewrap", "util-linux", "python3"}
    # The interpreter and programs the sandbox settings name by default, checked when the image is built.
    sandbox = SandboxConfig()
    assert sandbox.python == "/usr/bin/python3" and f"{sandbox.python} -c" in toolbox_file
    assert f"command -v {sandbox.bwrap} setpriv prlimit" in toolbox_file
    assert re.search(r'pip install "\.\[toolbox\]"', toolbox_file)
    assert "USER" not in re.findall(r"^(\w+)", toolbox_file, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["fleetgate"\]$', toolbox_file, re.MULTILINE)
    assert re.search(r'^CMD \["toolbox", ', toolbox_file, re.MULTILINE)
    ignore = (DEPLOY / "docker" / "toolbox.Dockerfile.dockerignore").read_text().split()
    assert {"!toolbox", "!fleetgate"} <= set(ignore) and "!replicas" not in ignore
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert chart_values["images"]["toolbox"]["repository"] == "fleetgate/toolbox"


def test_dockerfiles_install_only_their_part_and_the_rays_agree() -> None:
    router_file = (DEPLOY / "docker" / "router.Dockerfile").read_text()
    replica_file = (DEPLOY / "docker" / "replica.Dockerfile").read_text()
    for dockerfile, part, other in ((router_file, "router", "replicas"), (replica_file, "replicas", "router")):
        copied = set(re.findall(r"^COPY (\S+) \./\1$", dockerfile, re.MULTILINE))
        assert {"fleetgate", part, "deploy/prometheus", "deploy/grafana"} <= copied
        assert other not in copied and "loadtest" not in copied
        assert re.search(r"^COPY pyproject\.toml setup\.py README\.md \./$", dockerfile, re.MULTILINE)
        assert re.search(r"pip install \.( |$)", dockerfile, re.MULTILINE)
    assert re.search(r"^FROM python:3\.11-slim$", router_file, re.MULTILINE)
    assert re.search(r"^FROM vllm/vllm-openai:", replica_file, re.MULTILINE)
    (ray_version,) = re.findall(r"^ARG RAY_VERSION=(\S+)$", replica_file, re.MULTILINE)
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert chart_values["rayCluster"]["rayVersion"] == ray_version
