"""`make airflow` and `make mlflow` listen on 127.0.0.1 only: every server, log servers included.

The server settings are read from Airflow's own config template, so a setting
a later Airflow adds is checked without editing this test.
"""

import importlib.util
import os
import re
import shlex
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"


def recipe(target: str) -> str:
    """The shell text of a Makefile target's recipe, continuation lines joined."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{re.escape(target)}:", line))
    body = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        body.append(line[1:])
    return re.sub(r"\\\n\s*", " ", "\n".join(body))


def airflow_options() -> dict[tuple[str, str], dict]:
    """(section, option) -> its entry in Airflow's config template (config.yml), read without importing Airflow."""
    package = Path(importlib.util.find_spec("airflow").submodule_search_locations[0])
    template = yaml.safe_load((package / "config_templates" / "config.yml").read_text())
    return {(section, name): option for section, body in template.items()
            for name, option in (body.get("options") or {}).items()}


def bind_hosts(options: dict) -> list[tuple[str, str]]:
    """Host settings of servers Airflow starts (not of services it connects to, as statsd_host or smtp_host)."""
    return sorted(key for key, option in options.items() if key[1].endswith("host")
                  and ("server" in key[1] or "start" in (option.get("description") or "").lower()))


def env_settings(text: str) -> dict[str, str]:
    return dict(re.findall(r"\b(AIRFLOW__[A-Z_]+)=(\S+)", text))


def airflow_commands(text: str) -> list[list[str]]:
    """Each ``airflow <command> ...`` the recipe runs, as argv after ``airflow``."""
    found = []
    for match in re.finditer(r"\$\(BIN\)/airflow ([^&;|>]+)", text):
        found.append(shlex.split(match.group(1).replace("{", "").replace("}", "")))
    return found


def test_every_airflow_server_host_in_the_config_template_is_loopback():
    hosts = bind_hosts(airflow_options())
    assert ("api", "host") in hosts and ("scheduler", "scheduler_health_check_server_host") in hosts
    settings = env_settings(recipe("airflow"))
    for section, name in hosts:
        assert settings.get(f"AIRFLOW__{section.upper()}__{name.upper()}") == LOOPBACK, (section, name)


def test_log_servers_without_a_host_setting_are_not_started():
    """Airflow's log servers bind every interface and have a port setting only: the recipe starts none."""
    options = airflow_options()
    log_servers = [name.removesuffix("_log_server_port") for section, name in options
                   if name.endswith("_log_server_port")]
    assert sorted(log_servers) == ["trigger", "worker"]
    unbound = [s for s in log_servers if (("logging", f"{s}_log_server_host") not in options)]
    commands = airflow_commands(recipe("airflow"))
    names = [c[0] for c in commands]
    assert "standalone" not in names  # it starts the scheduler and triggerer with their log servers on
    # the worker log server runs in the scheduler (LocalExecutor), the trigger log server in the triggerer
    for server, command in (("worker", "scheduler"), ("trigger", "triggerer")):
        if server in unbound:
            (argv,) = [c for c in commands if c[0] == command]
            assert "--skip-serve-logs" in argv, command
    assert {"api-server", "scheduler", "dag-processor", "triggerer"} <= set(names)


def test_the_recipes_airflow_commands_and_flags_exist():
    from airflow.cli.cli_parser import get_parser

    parser = get_parser()
    for argv in airflow_commands(recipe("airflow")):
        parser.parse_args(argv)  # exits (SystemExit) on an unknown command or flag


def test_mlflow_server_binds_loopback():
    text = recipe("mlflow")
    assert re.search(rf"mlflow server .*--host {re.escape(LOOPBACK)}\b", text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_make_airflow_listens_on_loopback_only(tmp_path):
    """The real thing: `make airflow` answers on its port, and no process of it listens on another address."""
    port = free_port()
    env = {**os.environ, "HIERICD_HOME": str(tmp_path / "home"), "AIRFLOW_PORT": str(port),
           "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True"}  # start that server too, to see where it binds
    # a new session, SIGINT as a terminal's Ctrl-C sends it (an inherited "ignore" would stop the recipe's trap)
    # -o: never rebuild the venv from here, whatever setup.cfg's time stamp
    log = tmp_path / "make.log"  # a file, not a pipe: four chatty servers would fill a pipe and block
    make = subprocess.Popen(["make", "-s", "-o", ".venv/.installed", "airflow"], cwd=ROOT, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 240
        while True:
            assert make.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/api/v2/monitor/health", timeout=5) as answer:
                    health = answer.read().decode()
                if '"triggerer"' in health and health.count('"healthy"') >= 4:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(3)
        time.sleep(5)  # the scheduler's health check server starts beside the scheduler
        tree = [psutil.Process(make.pid), *psutil.Process(make.pid).children(recursive=True)]
        listening = []
        for process in tree:
            try:
                listening += [(c.laddr.ip, c.laddr.port, process.name()) for c in process.net_connections("inet")
                              if c.status == psutil.CONN_LISTEN]
            except psutil.NoSuchProcess:
                continue
        assert any(p == port for _, p, _ in listening), listening
        assert all(ip == LOOPBACK for ip, _, _ in listening), listening
    finally:
        os.killpg(make.pid, signal.SIGINT)
        try:
            make.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
