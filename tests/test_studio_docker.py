"""The Dockerfile and its entrypoint, fast and without a Docker engine.

The image itself is built and run by ``scripts/docker-test.sh`` (CI runs it after the test
suite). Checked here, statically: the base image as a build argument, a non-root user, no
downloads but the package registries, the extra-CA build secret only in the build stage,
every COPY source present and not excluded by .dockerignore, every package folder copied,
the OSC port exposed as UDP, the entrypoint present, executable and valid bash, and the qbdi
options it passes accepted by the CLI. Checked by running: the entrypoint itself, here,
starting its own JACK dummy-driver server (under a private name) and ``qbdi serve`` behind
it, answering OSC, and stopping both on SIGTERM; other commands, with or without a leading
``qbdi``.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from jack_names import reusable_name
from pythonosc.osc_message import OscMessage

from qbdi.cli import COMMANDS, build_parser
from qbdi.server.backends import JACKD_LINE
from qbdi.server.osc_transport import encode

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
REGISTRIES: tuple[str, ...] = ()  # pip and apt as configured: no other index may be named


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            rows.append((word.upper(), rest.strip()))
    return rows


def _args() -> dict[str, str]:
    return dict(rest.split("=", 1) for word, rest in _instructions() if word == "ARG")


def _final_stage(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (word, _) in enumerate(rows) if word == "FROM")
    return rows[last_from:]


def test_base_image_is_a_build_argument_and_the_user_is_not_root():
    rows = _instructions()
    assert rows[0] == ("ARG", "BASE=python:3.11-slim")
    froms = [rest for word, rest in rows if word == "FROM"]
    assert len(froms) == 3, "requirements and build stages, and the image"
    assert all(rest.split()[0] == "${BASE}" for rest in froms)
    rows = _final_stage(rows)
    users = [i for i, (word, _) in enumerate(rows) if word == "USER"]
    assert users, "the image must not run as root"
    assert rows[users[-1]][1] not in ("root", "0")
    entry = next(i for i, (word, _) in enumerate(rows) if word == "ENTRYPOINT")
    assert users[-1] < entry


def test_no_downloads_but_the_package_registries():
    args = _args()
    for word, rest in _instructions():
        assert not (word == "ADD" and "://" in rest), f"ADD of a URL: {rest}"
        if word != "RUN":
            continue
        assert not re.search(r"\b(curl|wget|git clone)\b", rest), f"a download: {rest}"
        for url in re.findall(r"(?:--(?:extra-)?index-url)\s+\"?([^\s\"]+)", rest):
            url = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], url)
            assert url in REGISTRIES, f"not a package registry: {url}"


def test_extra_ca_certificates_only_reach_the_build_stage():
    """The host's extra CA certificates come in as a BuildKit secret, mounted only for the
    build stage's download step: never a build argument, a COPY or a file of the image."""
    rows = _instructions()
    final = _final_stage(rows)
    secret_runs = [rest for word, rest in rows if word == "RUN" and "type=secret" in rest]
    assert len(secret_runs) == 1 and "id=extra_ca" in secret_runs[0]
    assert not any("secret" in rest or "ca-certificates" in rest.lower()
                   for word, rest in final if word in ("RUN", "COPY", "ADD", "ENV")), final
    assert [rest for word, rest in rows if word == "ARG"] == ["BASE=python:3.11-slim"]
    copied_from_build = [rest for word, rest in final if word == "COPY" and "--from" in rest]
    assert copied_from_build == ["--from=build /opt/venv /opt/venv"]


def test_every_copy_source_exists_and_is_in_the_build_context():
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    copied = set()
    for word, rest in _instructions():
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _ = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source
                copied.add(source)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_dirs = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    assert package_dirs <= copied, f"package folders not copied: {package_dirs - copied}"
    assert {"pyproject.toml", "README.md", "docker/entrypoint.sh"} <= copied
    assert (ROOT / "models" / "default" / "qbdi-bach.safetensors").is_file()


def test_osc_port_exposed_as_udp():
    exposed = [rest for word, rest in _instructions() if word == "EXPOSE"]
    assert exposed == ["9000/udp"]


def test_the_entrypoint_is_executable_bash_and_calls_what_exists():
    assert os.access(ENTRYPOINT, os.X_OK)
    subprocess.run(["bash", "-n", str(ENTRYPOINT)], check=True)
    script = ENTRYPOINT.read_text()
    assert JACKD_LINE.rstrip(" &") in script, "the same jackd line as `qbdi ports` suggests"
    commands = {command.name for command in COMMANDS}
    assert {"serve", "doctor"} <= commands
    build_parser().parse_args(["serve", "--backend", "jack", "--osc-host", "0.0.0.0",
                               "--osc-allow", "172.17.0.1,10.0.0.2", "--osc-port", "9000"])
    assert '"qbdi-entrypoint"' in DOCKERFILE.read_text()


def _jack_up(env: dict[str, str]) -> bool:
    return subprocess.run(["jack_lsp"], env=env, capture_output=True, timeout=10).returncode == 0


@pytest.mark.jack
def test_the_entrypoint_serves_behind_its_own_jack_and_stops_both(tmp_path):
    if shutil.which("jackd") is None or shutil.which("qbdi") is None:
        pytest.skip("needs jackd (apt-get install jackd2) and the qbdi command")
    env = {**os.environ, "JACK_DEFAULT_SERVER": reusable_name("qbdi-entrypoint"),
           "JACK_NO_START_SERVER": "1", "QBDI_OSC_ALLOW": "127.0.0.1",
           "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    assert not _jack_up(env)
    process = subprocess.Popen([str(ENTRYPOINT), "serve", "--osc-port", "0", "--quiet"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, start_new_session=True)
    try:
        ready = process.stdout.readline()
        assert "qbdi serve: ready" in ready, ready
        port = int(re.search(r"osc 0\.0\.0\.0:(\d+)", ready).group(1))
        ports = subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True).stdout
        names = ports.splitlines()
        assert "qbdi:qbdi in" in names  # the output is a second client: "qbdi-01:qbdi out"
        assert any(re.fullmatch(r"qbdi(-\d+)?:qbdi out", name) for name in names), names
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.bind(("127.0.0.1", 0))
            client.settimeout(5)
            client.sendto(encode("/qbdi/mode", ["free"]), ("127.0.0.1", port))
            reply = OscMessage(client.recvfrom(65_535)[0])
        assert (reply.address, list(reply.params)) == ("/qbdi/mode", ["free"])
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert not _group_alive(process.pid), "qbdi or jackd outlived the entrypoint"
        assert not _jack_up(env), "the entrypoint must stop the jackd it started"
    finally:
        if _group_alive(process.pid):  # the entrypoint, qbdi and jackd share the group
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group is left (zombies of ours aside)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    alive = [p for p in Path("/proc").iterdir() if p.name.isdigit()
             and _stat(p).get("pgrp") == pgid and _stat(p).get("state") != "Z"]
    return bool(alive)


def _stat(proc: Path) -> dict[str, object]:
    try:
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return {}
    return {"state": fields[0], "pgrp": int(fields[2])}


@pytest.mark.parametrize("args", [["presets"], ["qbdi", "presets"]])
def test_the_entrypoint_passes_other_commands_to_qbdi(args):
    """`docker run IMAGE presets` and `docker run IMAGE qbdi presets` alike."""
    if shutil.which("qbdi") is None:
        pytest.skip("the qbdi command is not installed")
    result = subprocess.run([str(ENTRYPOINT), *args], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "paper-256" in result.stdout


def test_the_docker_test_script_is_valid_bash_and_its_checks_import():
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / "docker-test.sh")], check=True)
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("bash scripts/test.sh") < ci.index("bash scripts/docker-test.sh")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "docker_checks.py"), "--help"],
                   check=True, capture_output=True, timeout=60)
