"""Rendering and checking the Helm chart offline, for tests/test_helm_chart.py.

Renders helm/fleetgate with Helm's own engine (the Go SDK bundled in the PyPI
package ``helm-python-sdk``; no helm binary, no cluster, no network), merges values
files the way ``helm install -f a -f b`` does, and validates objects against the
Kubernetes schemas (``kubernetes-validate``) and KubeRay's RayCluster CRD.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "helm" / "fleetgate"
# CI checks out shared/ beside the repository.
KUBERAY_CRD = REPO.parent / "shared" / "schemas" / "kuberay-v1.1-ray.io_rayclusters.yaml"
# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas we have.
KUBE_VERSIONS = ("1.27.0", kubernetes_validate.utils.latest_version())
# Kinds defined by CRDs, which kubernetes-validate has no schema for.
CUSTOM_KINDS = {"RayCluster", "ServiceMonitor", "PodMonitor", "PrometheusRule"}

Obj = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    """One render of the chart: its objects (in template order) and NOTES.txt."""

    objects: list[Obj]
    notes: str

    def of_kind(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str) -> Obj:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, got {[o['metadata']['name'] for o in found]}"
        return found[0]

    def named(self, kind: str, name: str) -> Obj:
        for o in self.of_kind(kind):
            if o["metadata"]["name"] == name:
                return o
        raise KeyError(f"{kind}/{name}")


def prepare_chart(destination: Path) -> Path:
    """A copy of the chart with deploy/'s rules and dashboards copied in by ``make chart``."""
    chart = destination / "fleetgate"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("files"))
    subprocess.run(["make", "-s", "-C", str(REPO), "chart", f"CHART_DIR={chart}"], check=True)
    return chart


def copy_chart_only(destination: Path) -> Path:
    """A copy of the chart as committed, without ``make chart``'s copies."""
    chart = destination / "fleetgate"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("files"))
    return chart


def merge_values(base: Obj, override: Obj) -> Obj:
    """``override`` over ``base`` as Helm merges ``-f`` files: maps recursively, anything else replaced.

    A null in a later file is kept, so Helm drops that key from the chart's defaults.
    """
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def values_from_files(paths: Iterable[Path], overrides: Obj | None = None) -> Obj:
    values: Obj = {}
    for path in paths:
        values = merge_values(values, yaml.safe_load(path.read_text()) or {})
    return merge_values(values, overrides or {})


def render(chart: Path, values: Obj, *, release: str = "fg", namespace: str = "llm") -> Rendered:
    """Render as ``helm install`` would (values checked against values.schema.json first)."""
    with helm_python.Chart.load(chart) as loaded:
        manifests = loaded.render(values, name=release, namespace=namespace, is_install=True)
    objects: list[Obj] = []
    notes = ""
    for template in sorted(manifests):
        if template.endswith("NOTES.txt"):
            notes = manifests[template]
            continue
        objects.extend(doc for doc in yaml.safe_load_all(manifests[template]) if doc)
    return Rendered(objects=objects, notes=notes)


def validate_kubernetes_object(obj: Obj) -> None:
    """Validate a built-in object against every Kubernetes version in KUBE_VERSIONS, rejecting unknown fields."""
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


def validate_pod_template(template: Obj) -> None:
    """Validate an embedded pod template (e.g. a RayCluster group's) as a Kubernetes PodTemplate."""
    validate_kubernetes_object(
        {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "check"}, "template": template}
    )


def _forbid_unknown_fields(schema: Any) -> Any:
    """A CRD schema that rejects fields it does not define, as the API server's strict field validation does."""
    if isinstance(schema, list):
        return [_forbid_unknown_fields(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _forbid_unknown_fields(value) for key, value in schema.items()}
    if (
        "properties" in strict
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


@cache
def kuberay_raycluster_schema() -> Obj:
    """The ray.io/v1 openAPIV3Schema of KubeRay's RayCluster CRD, unknown fields forbidden."""
    crd = yaml.safe_load(KUBERAY_CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return _forbid_unknown_fields(version["schema"]["openAPIV3Schema"])


def validate_raycluster(obj: Obj) -> None:
    assert obj["apiVersion"] == "ray.io/v1"
    jsonschema.Draft7Validator(kuberay_raycluster_schema()).validate(obj)


def container(pod_template: Obj, name: str) -> Obj:
    (found,) = [c for c in pod_template["spec"]["containers"] if c["name"] == name]
    return found


def env_by_name(container_spec: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container_spec.get("env", [])}


def volume_by_name(pod_template: Obj) -> dict[str, Obj]:
    return {v["name"]: v for v in pod_template["spec"].get("volumes", [])}
