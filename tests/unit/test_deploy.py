"""deploy/: the Kubernetes manifests and the Compose file are valid for their schemas, and what
must agree across files does: variable names, probe paths, replicas and selectors, ordering."""

from __future__ import annotations

import importlib.resources
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml

from bot.config import load_settings
from fakes.cloud import FakeCloud
from fakes.harness import BackgroundBot

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
# The oldest Kubernetes minor still in upstream support when this was written, and the newest
# kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.32.0", kubernetes_validate.utils.latest_version())
BOT_LABELS = {"app.kubernetes.io/name": "oauth-bot", "app.kubernetes.io/component": "bot"}


def manifests() -> list[tuple[str, dict[str, Any]]]:
    """(file name, resource) for every YAML document under deploy/kubernetes/."""
    found = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                found.append((path.name, document))
    return found


def resource(kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [r for _, r in manifests() if r["kind"] == kind and name in (None, r["metadata"]["name"])]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def readme_variables() -> set[str]:
    """Every variable named in the first column of README.md's configuration table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first_column = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_column))
    assert len(names) > 20, names  # the table was found
    return names


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for _, r in manifests():
        if r["kind"] in ("Deployment", "Job"):
            yield r["kind"], r["spec"]["template"]["spec"]


def env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


# --- schemas ----------------------------------------------------------------------------------
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_kubernetes_manifests_are_valid_for_the_kubernetes_schemas(version: str) -> None:
    """Every resource under deploy/kubernetes/ validates against the Kubernetes JSON schemas of
    `version`, strictly (an unknown or misspelt field is an error), offline."""
    found = manifests()
    assert {r["kind"] for _, r in found} >= {
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Job",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    }
    for file_name, document in found:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{file_name}: {document['kind']} {document['metadata']['name']}: {error.message}")


def test_the_compose_file_is_valid_for_the_compose_specification() -> None:
    """deploy/compose.yaml validates against the Compose specification's JSON schema
    (compose-spec/compose-spec's schema/compose-spec.json, as check-jsonschema vendors it)."""
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(vendored.read_text())
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator(schema).iter_errors(compose())]
    assert errors == []


# --- what must agree across files ----------------------------------------------------------------
def test_every_variable_the_deployment_files_set_is_one_the_readme_lists() -> None:
    """The pods' env and envFrom (the ConfigMap's keys), the Secrets' keys, the Compose
    services' environment and the env file example name only variables of README.md's
    configuration table: the bot reads nothing else, so any other name would be ignored."""
    known = readme_variables()
    named: dict[str, set[str]] = {}
    for kind, spec in pod_specs():
        for container in containers(spec):
            named[f"{kind} {container['name']} env"] = {e["name"] for e in container.get("env", [])}
            for source in container.get("envFrom", []):
                config_map = resource("ConfigMap", source["configMapRef"]["name"])
                named[f"{kind} {container['name']} envFrom"] = set(config_map["data"])
    for _, r in manifests():
        if r["kind"] == "Secret":
            named[f"Secret {r['metadata']['name']}"] = set(r.get("stringData", {})) | set(r.get("data", {}))
    for name in ("migrate", "bot"):
        named[f"compose {name}"] = set(compose()["services"][name].get("environment", {}))
    named["oauth-bot.env.example"] = set(env_file(DEPLOY / "oauth-bot.env.example"))
    unknown = {where: sorted(names - known) for where, names in named.items() if names - known}
    assert unknown == {}
    assert named["Deployment oauth-bot env"] >= {
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "AZURE_CLIENT_SECRET",
        "DATABASE_URL",
    }


def test_secrets_come_from_the_secret_and_the_rest_from_the_config_map() -> None:
    """The bot token, signing secret, client secret and database URL reach the pods from the
    Secret (secretKeyRef), never as literal values or through the ConfigMap."""
    secret_names = {
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "AZURE_CLIENT_SECRET",
        "DATABASE_URL",
    }
    assert not secret_names & set(resource("ConfigMap", "oauth-bot")["data"])
    for kind, spec in pod_specs():
        for container in containers(spec):
            for variable in container.get("env", []):
                if variable["name"] in secret_names:
                    assert "value" not in variable, f"{kind}: {variable['name']} is a literal"
                    assert "secretKeyRef" in variable["valueFrom"], f"{kind}: {variable['name']}"


def test_the_example_configuration_is_one_serve_accepts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The ConfigMap plus the example Secret, and the Compose env file example plus the
    DATABASE_URL compose.yaml makes, each pass the bot's own start-up checks for `serve`
    (load_settings(for_serve=True)): PostgreSQL for the replicas, well-formed tokens and URLs."""
    monkeypatch.chdir(tmp_path)
    kubernetes = {
        **resource("ConfigMap", "oauth-bot")["data"],
        **resource("Secret", "oauth-bot")["stringData"],
    }
    database_url = compose()["services"]["bot"]["environment"]["DATABASE_URL"]
    compose_env = {
        **env_file(DEPLOY / "oauth-bot.env.example"),
        "DATABASE_URL": database_url.replace(
            "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in deploy/.env}", "hex"
        ),
    }
    for environment in (kubernetes, compose_env):
        with monkeypatch.context() as scoped:
            for name, value in environment.items():
                scoped.setenv(name, value)
            settings = load_settings(for_serve=True)
            assert settings.database_url.startswith("postgresql+psycopg://")
            assert not settings.socket_mode


@pytest.fixture
def http_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BackgroundBot]:
    """The bot in HTTP mode, as `serve` builds its HTTP side, against the loopback fakes."""
    with FakeCloud(tmp_path) as cloud:
        monkeypatch.setenv("SSL_CERT_FILE", str(cloud.ca.bundle_path))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cloud.ca.bundle_path))
        with BackgroundBot(cloud.settings(f"sqlite:///{tmp_path / 'bot.db'}")) as bot:
            yield bot


def probes() -> dict[str, dict[str, Any]]:
    (container,) = resource("Deployment", "oauth-bot")["spec"]["template"]["spec"]["containers"]
    return {kind: container[kind] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}


@pytest.mark.parametrize(
    "probe",
    ["startupProbe", "livenessProbe", "readinessProbe"],
)
def test_the_probes_ask_for_paths_a_running_bot_serves(http_bot: BackgroundBot, probe: str) -> None:
    """Each probe of the Deployment is a GET on the container's named port 3000 (PORT in the
    ConfigMap), and a running bot answers its path with 200."""
    (container,) = resource("Deployment", "oauth-bot")["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check = probes()[probe]["httpGet"]
    assert ports[check["port"]] == int(resource("ConfigMap", "oauth-bot")["data"]["PORT"]) == 3000
    response = httpx.get(f"{http_bot.url}{check['path']}", timeout=5)
    assert response.status_code == 200, f"{probe} GET {check['path']}: {response.status_code}"


def test_the_probe_paths_are_the_documented_ones() -> None:
    """Start-up and liveness probes ask for /healthz; readiness for /readyz (the database check
    the bot is getting)."""
    paths = {kind: probe["httpGet"]["path"] for kind, probe in probes().items()}
    assert paths == {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_two_replicas_that_the_disruption_budget_and_the_service_select() -> None:
    """The Deployment runs at least 2 replicas; its selector, the PodDisruptionBudget's
    (minAvailable 1) and the Service's select its pods and not the migration Job's; the
    Service's targetPort is the container's named port."""
    deployment = resource("Deployment", "oauth-bot")
    pdb = resource("PodDisruptionBudget", "oauth-bot")
    service = resource("Service", "oauth-bot")
    job_labels = resource("Job", "oauth-bot-migrate")["spec"]["template"]["metadata"]["labels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["replicas"] >= 2
    assert pdb["spec"]["minAvailable"] == 1
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        pdb["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"],
    ):
        assert selector == BOT_LABELS
        assert selects(selector, pod_labels) and not selects(selector, job_labels)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in container["ports"]}


def test_the_migration_runs_before_the_bots() -> None:
    """Kubernetes: the Job runs `migrate` and the Deployment `serve`, from the same image.
    Compose: `migrate` waits for PostgreSQL 15's health check, and the two bot replicas for
    `migrate` to complete successfully."""
    (job_container,) = resource("Job", "oauth-bot-migrate")["spec"]["template"]["spec"]["containers"]
    (bot_container,) = resource("Deployment", "oauth-bot")["spec"]["template"]["spec"]["containers"]
    assert job_container["args"] == ["migrate"] and bot_container["args"] == ["serve"]
    assert job_container["image"] == bot_container["image"]
    services = compose()["services"]
    assert services["postgres"]["image"] == "postgres:15" and services["postgres"]["healthcheck"]["test"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    assert services["bot"]["command"] == ["serve"]
    assert services["bot"]["deploy"]["replicas"] == 2
    assert services["bot"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["bot"]["env_file"] == ["oauth-bot.env"]


def test_the_pods_run_as_the_images_non_root_user_within_limits() -> None:
    """Every container runs as the Dockerfile's non-root USER, without privilege escalation,
    with a read-only root filesystem and all capabilities dropped, and has CPU and memory
    requests and limits."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    (user,) = re.findall(r"^USER (\d+)$", dockerfile, flags=re.MULTILINE)
    for kind, spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, kind
        assert spec["securityContext"]["runAsUser"] == int(user), kind
        assert spec["automountServiceAccountToken"] is False, kind
        for container in containers(spec):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, kind
            assert context["readOnlyRootFilesystem"] is True, kind
            assert context["capabilities"]["drop"] == ["ALL"], kind
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) == {"cpu", "memory"}, (kind, bound)
