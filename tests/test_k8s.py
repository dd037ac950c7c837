"""The Kubernetes manifests and Dockerfiles, checked without a cluster or a Docker daemon.

Each overlay is rendered with the kubectl (and its built-in kustomize) that the dev group installs,
every rendered object is validated strictly against the bundled schemas of pinned Kubernetes versions,
and the properties the deployment relies on are asserted: hardened pods, probes, autoscaling,
disruption budgets, headless gRPC Services, the Ingress reaching the public HTTP port only, network
policies, no committed secrets.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
OVERLAYS = ("dev", "prod")
NAMESPACES = {"dev": "hookbay-dev", "prod": "hookbay"}
# The oldest Kubernetes the manifests are meant for (the native preStop sleep action is on by default
# from 1.30) and the newest schema kubernetes-validate bundles here.
K8S_VERSIONS = ("1.31.0", "1.37.0")
SERVICES = ("receiver", "parser", "actions")
GRPC_PORTS = {"parser": 50061, "actions": 50062}
UID = 10001
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass", "StorageClass"}


def tool(name: str) -> str:
    """A dev-group binary: next to this interpreter (the project's .venv), else on PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found next to {sys.executable} or on PATH (uv sync installs it)")
    return found


@cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    proc = subprocess.run(
        [tool("kubectl"), "kustomize", str(ROOT / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"kubectl kustomize k8s/overlays/{overlay} failed:\n{proc.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    return doc


def pod_specs(docs: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            yield f"CronJob/{doc['metadata']['name']}", doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels selectors are checked here: {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def pod_labels(docs: tuple[dict[str, Any], ...], component: str) -> dict[str, str]:
    return named(docs, "Deployment", f"hookbay-{component}")["spec"]["template"]["metadata"]["labels"]


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def docs(overlay: str) -> tuple[dict[str, Any], ...]:
    return render(overlay)


# -- schema ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_is_valid_strictly(docs: tuple[dict[str, Any], ...], version: str) -> None:
    errors = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(
                f"{doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}"
            )
    assert not errors, "\n".join(errors)


def test_strict_validation_catches_an_unknown_field() -> None:
    """Guards the test above: a misspelt field must fail, not pass silently."""
    deployment = named(render("dev"), "Deployment", "hookbay-receiver")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)


def test_namespace_is_set_on_every_namespaced_object(overlay: str, docs: tuple[dict[str, Any], ...]) -> None:
    wrong = [
        f"{d['kind']}/{d['metadata']['name']}"
        for d in docs
        if d["kind"] not in CLUSTER_SCOPED and d["metadata"].get("namespace") != NAMESPACES[overlay]
    ]
    assert not wrong, f"objects outside namespace {NAMESPACES[overlay]}: {wrong}"
    assert [d["metadata"]["name"] for d in of_kind(docs, "Namespace")] == [NAMESPACES[overlay]]


def test_every_object_carries_the_common_labels(docs: tuple[dict[str, Any], ...]) -> None:
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        assert labels.get("app.kubernetes.io/part-of") == "hookbay", where
        assert labels.get("app.kubernetes.io/name"), where
        assert labels.get("app.kubernetes.io/component"), where
    for doc in of_kind(docs, "Deployment") + of_kind(docs, "Job"):
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert labels.get("app.kubernetes.io/part-of") == "hookbay"
        assert (
            labels.get("app.kubernetes.io/component")
            == doc["metadata"]["labels"]["app.kubernetes.io/component"]
        )


def test_no_secret_values_are_rendered(docs: tuple[dict[str, Any], ...]) -> None:
    assert not [d for d in of_kind(docs, "Secret") if d.get("data") or d.get("stringData")]


def test_the_example_secrets_have_every_referenced_key(docs: tuple[dict[str, Any], ...]) -> None:
    """k8s/examples/secrets.example.yaml (what the README tells operators to create) matches what the
    pods reference, and stays out of every kustomization."""
    example = ROOT / "k8s" / "examples" / "secrets.example.yaml"
    provided = {
        (d["metadata"]["name"], key)
        for d in yaml.safe_load_all(example.read_text())
        if d
        for key in d["stringData"]
    }
    readme = (ROOT / "k8s" / "README.md").read_text()
    referenced = set()
    for name, spec in pod_specs(docs):
        for container in spec["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced.add((ref["name"], ref["key"]))
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    assert source["secretRef"].get("optional") is True, name
                    referenced |= {k for k in provided if k[0] == source["secretRef"]["name"]}
    assert referenced and referenced <= provided
    for secret, key in referenced:
        assert f"create secret generic {secret}" in readme, secret
        assert f"--from-literal={key}=" in readme, (secret, key)
    for kustomization in (ROOT / "k8s").rglob("kustomization.yaml"):
        assert "examples" not in kustomization.read_text(), kustomization


# -- pods ------------------------------------------------------------------------------------------


def test_every_container_is_hardened_and_bounded(docs: tuple[dict[str, Any], ...]) -> None:
    specs = list(pod_specs(docs))
    assert {name for name, _ in specs} >= {
        "Deployment/hookbay-receiver",
        "Deployment/hookbay-parser",
        "Deployment/hookbay-actions",
        "Job/hookbay-migrate",
    }
    for name, spec in specs:
        assert spec.get("automountServiceAccountToken") is False, name
        assert spec.get("serviceAccountName"), name
        pod_sc = spec.get("securityContext", {})
        tmp_volumes = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{name} container {container['name']}"
            sc = {**pod_sc, **container.get("securityContext", {})}
            assert sc.get("runAsNonRoot") is True, where
            assert isinstance(sc.get("runAsUser"), int) and sc["runAsUser"] > 0, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not sc.get("capabilities", {}).get("add"), where
            assert sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            assert "privileged" not in sc or sc["privileged"] is False, where
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), f"{where}: {bound}"
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert mounts.get("/tmp") in tmp_volumes, f"{where}: /tmp must be a writable emptyDir"
            assert all(p.get("name") for p in container.get("ports", [])), f"{where}: unnamed port"


def test_images_come_from_the_overlay(docs: tuple[dict[str, Any], ...]) -> None:
    for name, spec in pod_specs(docs):
        for container in spec["containers"]:
            image = container["image"]
            assert "/" in image and ":" in image.rsplit("/", 1)[1], f"{name}: {image} has no registry/tag"
            assert not image.endswith(":latest"), name
    migrate = named(docs, "Job", "hookbay-migrate")["spec"]["template"]["spec"]["containers"]
    receiver = named(docs, "Deployment", "hookbay-receiver")["spec"]["template"]["spec"]["containers"]
    assert migrate[0]["image"] == receiver[0]["image"], (
        "the Job runs `hookbay migrate` from the receiver image"
    )


def test_the_migration_job_runs_hookbay_migrate(docs: tuple[dict[str, Any], ...]) -> None:
    job = named(docs, "Job", "hookbay-migrate")
    spec = job["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert container["command"] == ["hookbay", "migrate"]
    env = {e["name"]: e for e in container.get("env", [])}
    assert env["HOOKBAY_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "hookbay-database",
        "key": "url",
    }
    assert spec["restartPolicy"] == "Never"


@pytest.mark.parametrize("component", SERVICES)
def test_deployments_roll_without_losing_capacity(docs: tuple[dict[str, Any], ...], component: str) -> None:
    deployment = named(docs, "Deployment", f"hookbay-{component}")
    strategy = deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert strategy["rollingUpdate"]["maxSurge"] not in (0, "0%")
    # The HPA owns the replica count; a replicas field would reset it on every apply.
    assert "replicas" not in deployment["spec"]
    spec = deployment["spec"]["template"]["spec"]
    assert 0 < spec["terminationGracePeriodSeconds"] <= 120
    [container] = spec["containers"]
    # Kubernetes kills the pod terminationGracePeriodSeconds after the preStop hook starts: the hook's
    # sleep plus the process's own stop budget (HOOKBAY_SHUTDOWN_GRACE) must fit, with a margin.
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert pre_stop + float(env["HOOKBAY_SHUTDOWN_GRACE"]) + 3 <= spec["terminationGracePeriodSeconds"]
    assert selects(deployment["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])


def test_receiver_probes_are_http(docs: tuple[dict[str, Any], ...]) -> None:
    [container] = named(docs, "Deployment", "hookbay-receiver")["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080, "admin": 50051}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HOOKBAY_HTTP_HOST"] == env["HOOKBAY_ADMIN_HOST"] == "0.0.0.0"
    assert env["HOOKBAY_HTTP_PORT"] == "8080" and env["HOOKBAY_ADMIN_PORT"] == "50051"


@pytest.mark.parametrize("component", ["parser", "actions"])
def test_grpc_services_have_native_grpc_probes(docs: tuple[dict[str, Any], ...], component: str) -> None:
    deployment = named(docs, "Deployment", f"hookbay-{component}")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": GRPC_PORTS[component], "metrics": 9090}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == GRPC_PORTS[component], probe
        assert "httpGet" not in container[probe] and "exec" not in container[probe]
    env = {e["name"]: e.get("value") for e in container["env"]}
    upper = component.upper()
    assert env[f"HOOKBAY_{upper}_HOST"] == "0.0.0.0"
    assert env[f"HOOKBAY_{upper}_PORT"] == str(GRPC_PORTS[component])
    assert env[f"HOOKBAY_{upper}_METRICS_PORT"] == "9090"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9090"


# -- scaling and disruption ------------------------------------------------------------------------


def test_every_deployment_has_an_hpa_and_a_pdb(overlay: str, docs: tuple[dict[str, Any], ...]) -> None:
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    pdbs = of_kind(docs, "PodDisruptionBudget")
    deployments = of_kind(docs, "Deployment")
    assert {d["metadata"]["name"] for d in deployments} == {f"hookbay-{c}" for c in SERVICES}
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        targeting = [
            h
            for h in hpas
            if h["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        ]
        assert len(targeting) == 1, f"{name}: {len(targeting)} HPAs"
        [hpa] = targeting
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"], name
        [metric] = hpa["spec"]["metrics"]
        assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"]["type"] == "Utilization"
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [p for p in pdbs if selects(p["spec"]["selector"], labels)]
        assert len(covering) == 1, f"{name}: {len(covering)} PDBs"
        if overlay == "prod":
            assert hpa["spec"]["minReplicas"] >= 2, f"{name}: prod needs more than one replica"


def test_prod_scales_further_and_gets_more_than_dev() -> None:
    def bounds(overlay: str, component: str) -> tuple[int, str]:
        docs = render(overlay)
        hpa = named(docs, "HorizontalPodAutoscaler", f"hookbay-{component}")
        [c] = named(docs, "Deployment", f"hookbay-{component}")["spec"]["template"]["spec"]["containers"]
        return hpa["spec"]["maxReplicas"], c["resources"]["requests"]["memory"]

    for component in SERVICES:
        dev_max, dev_mem = bounds("dev", component)
        prod_max, prod_mem = bounds("prod", component)
        assert prod_max > dev_max, component
        assert prod_mem != dev_mem, component


# -- services and ingress --------------------------------------------------------------------------


def test_grpc_services_are_headless(docs: tuple[dict[str, Any], ...]) -> None:
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    assert set(services) == {
        "hookbay-receiver",
        "hookbay-receiver-admin",
        "hookbay-parser",
        "hookbay-actions",
    }
    for name, port in [
        ("hookbay-parser", 50061),
        ("hookbay-actions", 50062),
        ("hookbay-receiver-admin", 50051),
    ]:
        spec = services[name]["spec"]
        assert spec.get("clusterIP") == "None", f"{name} must be headless for dns:/// round_robin"
        assert [p["port"] for p in spec["ports"]] == [port], name
    receiver = services["hookbay-receiver"]["spec"]
    assert receiver.get("clusterIP") != "None" and receiver.get("type", "ClusterIP") == "ClusterIP"
    assert [(p["name"], p["targetPort"]) for p in receiver["ports"]] == [("http", "http")]


def test_clients_use_headless_dns_targets(overlay: str, docs: tuple[dict[str, Any], ...]) -> None:
    [config] = of_kind(docs, "ConfigMap")
    data = config["data"]
    ns = NAMESPACES[overlay]
    assert data["HOOKBAY_PARSER_ADDR"] == f"dns:///hookbay-parser.{ns}.svc:50061"
    assert data["HOOKBAY_ACTIONS_ADDR"] == f"dns:///hookbay-actions.{ns}.svc:50062"
    assert data["HOOKBAY_LOG_FORMAT"] == "json"
    assert not [k for k in data if "PASSWORD" in k or "SECRET" in k or k == "HOOKBAY_DATABASE_URL"]


def test_only_the_receiver_http_service_is_behind_the_ingress(docs: tuple[dict[str, Any], ...]) -> None:
    ingresses = of_kind(docs, "Ingress")
    assert ingresses
    http = named(docs, "Service", "hookbay-receiver")
    http_ports = {p["name"]: p["port"] for p in http["spec"]["ports"]}
    backends = []
    for ingress in ingresses:
        spec = ingress["spec"]
        assert "defaultBackend" not in spec
        for rule in spec["rules"]:
            for path in rule["http"]["paths"]:
                backends.append(path["backend"]["service"])
                assert path["path"].lower().startswith("/v1/data"), path["path"]
    assert backends
    for backend in backends:
        assert backend["name"] == "hookbay-receiver"
        port = backend["port"]
        assert port.get("name") == "http" or port.get("number") == http_ports["http"], port


# -- network policies ------------------------------------------------------------------------------


def policies(docs: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return of_kind(docs, "NetworkPolicy")


def test_default_deny_in_both_directions(docs: tuple[dict[str, Any], ...]) -> None:
    deny = [
        p["spec"]
        for p in policies(docs)
        if p["spec"]["podSelector"] == {}
        and sorted(p["spec"].get("policyTypes", [])) == ["Egress", "Ingress"]
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, "no default-deny NetworkPolicy (podSelector {}, Ingress+Egress, no rules)"


def ingress_rules_for_labels(
    docs: tuple[dict[str, Any], ...], labels: dict[str, str]
) -> list[dict[str, Any]]:
    return [
        rule
        for p in policies(docs)
        if selects(p["spec"]["podSelector"], labels) and "Ingress" in p["spec"].get("policyTypes", [])
        for rule in p["spec"].get("ingress", [])
    ]


def ingress_rules_for(docs: tuple[dict[str, Any], ...], component: str) -> list[dict[str, Any]]:
    return ingress_rules_for_labels(docs, pod_labels(docs, component))


def egress_ports_for(docs: tuple[dict[str, Any], ...], labels: dict[str, str]) -> set[int]:
    return {
        port["port"]
        for p in policies(docs)
        if selects(p["spec"]["podSelector"], labels) and "Egress" in p["spec"].get("policyTypes", [])
        for rule in p["spec"].get("egress", [])
        for port in rule.get("ports", [])
    }


def sources(rule: dict[str, Any]) -> list[dict[str, Any]]:
    assert rule.get("from"), f"an ingress rule open to everyone: {rule}"
    return rule["from"]


def test_grpc_ingress_comes_only_from_the_caller(docs: tuple[dict[str, Any], ...]) -> None:
    for component, caller in [("parser", "receiver"), ("actions", "parser")]:
        grpc_rules = [
            r for r in ingress_rules_for(docs, component) if {"grpc"} & {p["port"] for p in r["ports"]}
        ]
        assert grpc_rules, component
        for rule in grpc_rules:
            assert [p["port"] for p in rule["ports"]] == ["grpc"]
            for peer in sources(rule):
                assert set(peer) == {"podSelector"}, f"{component}: gRPC from outside the namespace"
                assert peer["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": f"hookbay-{caller}"}}
        other = [r for r in ingress_rules_for(docs, component) if r not in grpc_rules]
        for rule in other:
            assert [p["port"] for p in rule["ports"]] == ["metrics"], component
            for peer in sources(rule):
                assert peer == {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
                }


def test_receiver_ingress(docs: tuple[dict[str, Any], ...]) -> None:
    by_port: dict[str, list[dict[str, Any]]] = {}
    for rule in ingress_rules_for(docs, "receiver"):
        for port in rule["ports"]:
            by_port.setdefault(port["port"], []).extend(sources(rule))
    assert set(by_port) == {"http", "admin"}
    assert {"podSelector": {}} in by_port["admin"] and len(by_port["admin"]) == 1, (
        "admin: same namespace only"
    )
    assert all(set(peer) == {"namespaceSelector"} for peer in by_port["http"])
    namespaces = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in by_port["http"]
    }
    assert namespaces == {"ingress-nginx", "monitoring"}


def test_egress_is_what_each_pod_needs(docs: tuple[dict[str, Any], ...]) -> None:
    dns = {53}
    expected = {
        "receiver": {5432, 443, 50061},
        "parser": {5432, 443, 50062},
        "actions": {5432, 25, 465, 587, 443},
    }
    for component, ports in expected.items():
        assert egress_ports_for(docs, pod_labels(docs, component)) == ports | dns, component
    migrate = named(docs, "Job", "hookbay-migrate")["spec"]["template"]["metadata"]["labels"]
    assert egress_ports_for(docs, migrate) == {5432} | dns
    assert not ingress_rules_for_labels(docs, migrate)


# -- images ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("component", SERVICES)
def test_dockerfile_passes_hadolint(component: str) -> None:
    dockerfile = ROOT / "services" / component / "Dockerfile"
    proc = subprocess.run(
        [tool("hadolint"), "--no-color", "--failure-threshold", "warning", str(dockerfile)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("component", SERVICES)
def test_dockerfile_shape(component: str) -> None:
    """What hadolint cannot know: the uv two-step install, a non-root numeric user, the entry point."""
    text = (ROOT / "services" / component / "Dockerfile").read_text()
    package = f"--package hookbay-{component}"
    assert f"uv sync --frozen --no-dev --no-install-workspace {package}" in text
    assert f"uv sync --frozen --no-dev --no-editable {package}" in text
    assert text.index("--no-install-workspace") < text.index(f"COPY services/{component}/src")
    assert "UV_COMPILE_BYTECODE=1" in text and "UV_LINK_MODE=copy" in text
    assert f"\nUSER {UID}:{UID}\n" in text
    assert text.rstrip().endswith(f'ENTRYPOINT ["hookbay-{component}"]')
    final_stage = text.rsplit("\nFROM ", 1)[1]
    assert "uv" not in final_stage.split("\n", 1)[0]
    assert "COPY --from=uv" not in final_stage and "apt-get" not in final_stage
    if component == "receiver":
        assert "--package hookbay-cli" in text and "/app/.venv/bin/hookbay" in text
