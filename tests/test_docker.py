"""docker/: the compose stack and the image, checked without a Docker daemon.

The compose file is interpolated with docker/.env.example (secrets filled with
placeholders, as a user's docker/.env would be) and validated against the
Compose schema vendored in docker/schema/; then the rules the schema cannot
express: pinned images, health checks, depends_on conditions, secrets only
from .env, the Airflow components wired to each other. The Dockerfile is
parsed and checked for a pinned base, the constraints file and no secrets.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
SCHEMA = DOCKER / "schema" / "compose-spec.json"
SCHEMA_SHA256 = "0dc04bd346dcfee1b1419628fff79937bbf076925f298f272a2b490e2b112bac"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|ACCESS_KEY|(^|_)(KEY|TOKEN)(_|$)|MINIO_ROOT_USER")
AIRFLOW = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker")
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR, and $$ (a literal $)
VARIABLE = re.compile(r"\$\$|\$\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)")
# Go duration as Compose writes them: 10s, 1m30s, 500ms
DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


class InterpolationError(ValueError):
    """A ${VAR:?message} whose variable is unset or empty."""


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (comments and blank lines skipped)."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
            env[key.strip()] = value.strip()
    return env


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable substitution on one string."""

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        present = name in env
        filled = present and env[name] != ""
        if op in (":-", "-"):
            return env[name] if (filled if op == ":-" else present) else arg
        if op in (":?", "?"):
            if not (filled if op == ":?" else present):
                raise InterpolationError(f"{name}: {arg}")
            return env[name]
        return env.get(name, "")

    return VARIABLE.sub(substitute, value)


def interpolate_tree(node, env: dict[str, str]):
    """Substitute variables in every string value of a loaded YAML document."""
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(value, env) for value in node]
    return interpolate(node, env) if isinstance(node, str) else node


def variables(text: str) -> dict[str, str | None]:
    """Variables referenced in ``text`` -> their operator (None for a plain reference); $$ is no variable."""
    found: dict[str, str | None] = {}
    for match in VARIABLE.finditer(text):
        name = match.group("braced") or match.group("bare")
        if name:
            found.setdefault(name, match.group("op"))
    return found


def example_env(**overrides: str) -> dict[str, str]:
    """docker/.env.example with its empty secrets filled with placeholders, as a user's .env would be."""
    env = parse_env_file(DOCKER / ".env.example")
    return {key: (value or f"placeholder-{key.lower()}") for key, value in env.items()} | overrides


@cache
def compose() -> dict:
    """The compose file, interpolated with the example environment."""
    return interpolate_tree(yaml.safe_load(COMPOSE.read_text()), example_env())


def services() -> dict[str, dict]:
    return compose()["services"]


def depends_on(service: dict) -> dict[str, str]:
    """depends_on as {service: condition} (the list form means service_started)."""
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec["condition"] for name, spec in deps.items()}


def one_shots() -> set[str]:
    return {name for name, svc in services().items() if svc.get("restart") == "no"}


def env_of(service: dict) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        return dict(item.partition("=")[::2] for item in environment)
    return {key: str(value) for key, value in environment.items()}


def pinned(image: str) -> bool:
    """An exact version tag (x.y.z, a dated RELEASE tag) or a sha256 digest; never latest or a bare major.

    PostgreSQL numbers its releases major.minor since version 10, so there x.y is exact.
    """
    if re.search(r"@sha256:[0-9a-f]{64}$", image):
        return True
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return False
    exact = r"^v?\d+\.\d+\.\d+([.-]|$)" if name.rsplit("/", 1)[-1] != "postgres" else r"^\d{2,}\.\d+([.-]|$)"
    return bool(re.match(exact, tag) or re.match(r"^RELEASE\.\d{4}-\d{2}-\d{2}T", tag))


# ---------------------------------------------------------------- the helpers above


def test_interpolation_follows_compose_rules():
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET}-${UNSET}-$SET", env) == "x--x"
    assert interpolate("${EMPTY:-d} ${EMPTY-d} ${UNSET-d}", env) == "d  d"
    assert interpolate("$$HOSTNAME $${HOSTNAME}", env) == "$HOSTNAME ${HOSTNAME}"
    assert interpolate("${EMPTY?must be set}", env) == ""
    with pytest.raises(InterpolationError, match="EMPTY: set it"):
        interpolate("${EMPTY:?set it}", env)
    assert variables("a ${A:?x} $$B ${C:-1} $D") == {"A": ":?", "C": ":-", "D": None}


@pytest.mark.parametrize(("image", "ok"), [
    ("postgres:15.18-bookworm", True), ("python:3.11.14-slim-bookworm", True),
    ("minio/minio:RELEASE.2025-09-07T16-13-09Z", True), ("redis@sha256:" + "a" * 64, True),
    ("redis", False), ("redis:latest", False), ("postgres:15", False), ("postgres:15-bookworm", False),
    ("python:3.11-slim", False), ("redis:7.0-bookworm", False),
    ("localhost:5000/hiericd", False),
])
def test_pinned_image_rule(image, ok):
    assert pinned(image) is ok


# ---------------------------------------------------------------- compose file


def test_vendored_schema_is_the_documented_file():
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
    note = (DOCKER / "schema" / "README.md").read_text()
    assert SCHEMA_SHA256 in note and "Apache License 2.0" in note
    assert "Apache License" in (DOCKER / "schema" / "LICENSE").read_text()


def test_compose_file_matches_the_compose_schema():
    schema = json.loads(SCHEMA.read_text())
    checker = jsonschema.FormatChecker()
    checker.checks("duration")(lambda value: not isinstance(value, str) or bool(DURATION.match(value)))
    validator = jsonschema.Draft201909Validator(schema, format_checker=checker)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []


def test_schema_validation_catches_a_broken_service():
    schema = json.loads(SCHEMA.read_text())
    broken = json.loads(json.dumps(compose()))
    broken["services"]["redis"]["healthcheck"]["retries"] = "many"
    broken["services"]["redis"]["depends_on"] = {"postgres": {"condition": "service_ready"}}
    broken["services"]["postgres"]["helthcheck"] = broken["services"]["postgres"].pop("healthcheck")
    errors = jsonschema.Draft201909Validator(schema).iter_errors(broken)
    assert sorted("/".join(map(str, e.absolute_path)) for e in errors) == [
        "services/postgres", "services/redis/depends_on", "services/redis/healthcheck/retries"]


def test_every_variable_comes_from_the_env_file_and_secrets_are_required():
    text = COMPOSE.read_text()
    example = parse_env_file(DOCKER / ".env.example")
    used = variables(text)
    undefined = [name for name, op in used.items() if op not in (":-", "-") and name not in example]
    assert undefined == [], "variables without default missing from .env.example"
    secrets = {name for name in example if SECRET_NAME.search(name)}
    assert secrets >= {"POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "MLFLOW_DB_PASSWORD", "REDIS_PASSWORD",
                       "MINIO_ROOT_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY"}
    assert {name: example[name] for name in secrets if example[name]} == {}, "a secret has a value in .env.example"
    # every reference to a secret must refuse to start without it: ${NAME:?...}, never a default
    for name in secrets:
        ops = {m.group("op") for m in VARIABLE.finditer(text) if (m.group("braced") or m.group("bare")) == name}
        assert ops == {":?"}, f"{name} is referenced as {ops}"
    unused = set(example) - set(used) - {"COMPOSE_PROJECT_NAME"}
    assert unused == set(), "variables in .env.example that the compose file never uses"
    with pytest.raises(InterpolationError, match="AIRFLOW_JWT_SECRET"):
        interpolate_tree(yaml.safe_load(text), example_env(AIRFLOW_JWT_SECRET=""))
    assert (DOCKER / ".gitignore").read_text().split().count(".env") == 1


def test_no_secret_is_written_in_the_compose_file():
    raw = yaml.safe_load(COMPOSE.read_text())
    for name, service in raw["services"].items():
        for key, value in env_of(service).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", value), f"{name}.{key} must come from .env"
    for url_var in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL"):
        value = env_of(raw["services"]["airflow-worker"] if "environment" in raw["services"]["airflow-worker"]
                       else raw["x-airflow-common"])[url_var]
        assert re.search(r":\$\{[A-Z_]+:\?[^}]*\}@", value), f"{url_var}: the password must come from .env"


def test_every_image_is_pinned_and_built_services_use_the_project_image():
    for name, service in services().items():
        assert "image" in service, f"{name} has no image"
        assert pinned(service["image"]), f"{name}: image {service['image']!r} is not pinned to an exact version"
        if "build" in service:
            assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}, name
    built = {name for name, service in services().items() if "build" in service}
    assert built == {*AIRFLOW, "airflow-init", "mlflow", "minio-create-bucket"}


def test_long_running_services_have_health_checks():
    for name, service in services().items():
        if name in one_shots():
            assert "healthcheck" not in service, f"{name} runs once: it has nothing to be healthy for"
            continue
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no health check"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert service.get("restart") == "unless-stopped", name


def test_depends_on_conditions_reference_existing_services_in_a_startable_order():
    all_services = services()
    for name, service in all_services.items():
        for dep, condition in depends_on(service).items():
            assert dep in all_services, f"{name} depends on unknown service {dep}"
            assert dep != name
            if condition == "service_healthy":
                assert "healthcheck" in all_services[dep], f"{name} waits for {dep} to be healthy: it has no check"
            elif condition == "service_completed_successfully":
                assert dep in one_shots(), f"{name} waits for {dep} to complete: it does not run once"
            else:
                pytest.fail(f"{name} -> {dep}: use service_healthy or service_completed_successfully, not {condition}")
    # a start order exists (no cycle)
    remaining = {name: set(depends_on(svc)) for name, svc in all_services.items()}
    while remaining:
        ready = [name for name, deps in remaining.items() if not deps]
        assert ready, f"depends_on cycle among {sorted(remaining)}"
        for name in ready:
            del remaining[name]
        for deps in remaining.values():
            deps.difference_update(ready)
    assert depends_on(all_services["mlflow"]) == {"postgres": "service_healthy",
                                                  "minio-create-bucket": "service_completed_successfully"}
    for name in AIRFLOW:
        assert depends_on(all_services[name])["airflow-init"] == "service_completed_successfully", name


def test_airflow_components_share_one_configuration_and_the_catalog():
    all_services = services()
    envs = {name: env_of(all_services[name]) for name in (*AIRFLOW, "airflow-init")}
    first = envs["airflow-worker"]
    assert all(env == first for env in envs.values()), "Airflow components must share one configuration"
    assert first["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert first["AIRFLOW__CELERY__BROKER_URL"].endswith("@redis:6379/0")
    assert first["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
    assert first["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres:5432/airflow")
    assert first["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + first["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert first["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert all_services["airflow-apiserver"]["command"][-2:] == ["--port", "8080"]
    assert first["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert "--port=5000" in all_services["mlflow"]["command"]
    home = first["HIERICD_HOME"]
    for name in (*AIRFLOW, "airflow-init"):
        assert f"hiericd-home:{home}" in all_services[name]["volumes"], f"{name} does not see the catalog"
    assert "hiericd-home" in compose()["volumes"]


def test_workers_scale():
    worker = services()["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker and "hostname" not in worker
    assert worker["command"][:3] == ["airflow", "celery", "worker"]


def test_mlflow_uses_postgres_and_the_s3_bucket_the_one_shot_creates():
    mlflow, bucket_job = services()["mlflow"], services()["minio-create-bucket"]
    flags = dict(arg.split("=", 1) for arg in mlflow["command"] if arg.startswith("--"))
    assert flags["--backend-store-uri"].startswith("postgresql+psycopg2://mlflow:")
    assert flags["--backend-store-uri"].endswith("@postgres:5432/mlflow")
    bucket = env_of(bucket_job)["MLFLOW_BUCKET"]
    assert flags["--artifacts-destination"] == f"s3://{bucket}/"
    assert env_of(mlflow)["MLFLOW_S3_ENDPOINT_URL"] == env_of(bucket_job)["MLFLOW_S3_ENDPOINT_URL"] == \
        "http://minio:9000"
    assert env_of(mlflow)["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert bucket_job["command"] == ["python", "docker/create_bucket.py"]
    assert (DOCKER / "create_bucket.py").is_file()


def test_postgres_init_script_creates_both_databases():
    postgres = services()["postgres"]
    mount = next(v for v in postgres["volumes"] if "docker-entrypoint-initdb.d" in v)
    source = DOCKER / mount.split(":")[0]
    assert source.is_file() and source.stat().st_mode & 0o111, "the init script must exist and be executable"
    script = source.read_text()
    for database in ("airflow", "mlflow"):
        assert f"CREATE DATABASE {database} OWNER {database}" in script
    assert not re.search(r"PASSWORD '[^']", script), "no literal password in the init script"
    subprocess.run(["bash", "-n", str(source)], check=True)


@pytest.mark.skipif(not shutil.which("docker"), reason="no docker CLI")
def test_docker_compose_config_accepts_the_file(tmp_path):
    """`docker compose config` needs no daemon; only where the compose plugin is installed."""
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("the docker CLI has no compose plugin here (docker compose version failed)")
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in example_env().items()))
    done = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "--env-file", str(env_file), "config", "-q"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------- Dockerfile


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        instruction, _, args = full.partition(" ")
        out.append((instruction.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def test_dockerfile_parser():
    lines = dockerfile_instructions(DOCKER / "Dockerfile")
    assert lines[0][0] == "FROM"
    assert {instruction for instruction, _ in lines} <= {"FROM", "ENV", "RUN", "WORKDIR", "COPY", "USER", "VOLUME",
                                                         "ENTRYPOINT", "CMD", "ARG", "LABEL", "EXPOSE"}


def test_dockerfile_pins_its_base_and_installs_from_the_constraints():
    lines = dockerfile_instructions(DOCKER / "Dockerfile")
    bases = [args for instruction, args in lines if instruction == "FROM"]
    assert len(bases) == 1 and pinned(bases[0].split()[0]), bases
    assert re.match(r"python:3\.11\.\d+-slim", bases[0])

    copied_constraints = next(i for i, (ins, args) in enumerate(lines) if ins == "COPY" and "constraints.txt" in args)
    installs = [(i, args) for i, (ins, args) in enumerate(lines) if ins == "RUN" and "pip install" in args]
    assert installs and all(i > copied_constraints for i, _ in installs), "constraints.txt must be copied first"
    torch_pin = next(line for line in (ROOT / "constraints.txt").read_text().splitlines() if line.startswith("torch=="))
    for _, args in installs:
        for command in re.split(r"&&", args):
            if "pip install" not in command:
                continue
            if "download.pytorch.org/whl/cpu" in command:
                assert torch_pin.split("+")[0] in command.split(), "torch must be the constraints' version"
            elif "uninstall" not in command:
                assert "-c constraints.txt" in command, f"pip install without the constraints: {command.strip()}"
    assert any("download.pytorch.org/whl/cpu" in args for _, args in installs), "torch must come from the CPU index"


def test_dockerfile_copies_what_exists_and_runs_as_a_user_without_secrets():
    lines = dockerfile_instructions(DOCKER / "Dockerfile")
    ignore = [line.strip() for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    for instruction, args in lines:
        if instruction == "COPY":
            parts = [p for p in args.split() if not p.startswith("--")]
            for source in parts[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the build context (the repository root)"
                assert f"!{source}" in ignore, f"COPY {source}: Dockerfile.dockerignore leaves it out"
        if instruction in ("ENV", "ARG"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", args) or [args.split()[0]]
            assert not [n for n in names if SECRET_NAME.search(n)], f"{instruction} {args}: secrets belong in .env"
    users = [args for instruction, args in lines if instruction == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    assert ignore[0] == "*" and not any(".env" in entry for entry in ignore if entry.startswith("!"))
