"""The Helm chart (helm/fleetgate), rendered offline by Helm's own engine.

Every scenario (the defaults, a deploy/ config layered in, the examples, every
toggle on, external Redis) must lint cleanly, render objects that Kubernetes'
schemas accept (and KubeRay's CRD for the RayCluster), and render a fleetgate
config that fleetgate's own config model accepts. The values schema must refuse
bad values, and the chart must ship deploy/'s rules and dashboards unchanged.
"""

from __future__ import annotations

import base64
import re
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python
import httpx
import kubernetes_validate
import openai
import pytest
import yaml

from fleetgate.core.config import (
    FleetgateConfig,
    ModelConfig,
    RayConfig,
    RedisConfig,
    ReplicaDefaults,
    RouterConfig,
    ScalingConfig,
    SimConfig,
    TracingConfig,
    load_config,
)
from fleetgate.replicas.scaling import initial_replicas
from fleetgate.router.metrics import IN_FLIGHT
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


def fleetgate_pods(r: Rendered) -> list[Obj]:
    """The pod templates that run fleetgate code: the router, the Ray head and every Ray worker group."""
    cluster = r.one("RayCluster")["spec"]
    pods = [r.named("Deployment", f"{FULLNAME}-router")["spec"]["template"], cluster["headGroupSpec"]["template"]]
    return pods + [g["template"] for g in cluster["workerGroupSpecs"]]


@pytest.mark.parametrize(("values", "secret_name"), [("default", f"{FULLNAME}-replica-token"),
                                                    ("everything-on", "team-replica-token")])
def test_replica_token_reaches_routers_and_replicas(
    rendered: dict[str, Rendered], values: str, secret_name: str
) -> None:
    r = rendered[values]
    for pod in fleetgate_pods(r):
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
    for pod in fleetgate_pods(r):
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
     ("model", ModelConfig), ("sim", SimConfig), ("scaling", ScalingConfig), ("tracing", TracingConfig)],
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
