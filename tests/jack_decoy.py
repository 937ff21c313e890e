"""Run a command beside decoys on the default JACK server: the proof that tests keep to
their own JACK servers (issue 12).

    python3 tests/jack_decoy.py -- python3 -m pytest -q -m jack

When no JACK server runs under the default name, this starts one (the dummy driver), then
on it a ``qbdi serve --backend jack`` (ports "qbdi in" and "qbdi out", as a user's server
would have) and a "daw" client with ports "daw in" and "daw out" (as the routing tests
make). Then it runs the command, checks that the decoys outlived it (no test stopped or
used them), stops them and exits with the command's status (or 3 if a decoy died).

A default server that already runs (a user's session) is left alone: the command then runs
beside it, and no decoy is added to it. Without jackd the command runs alone.
``scripts/test.sh`` runs the whole suite this way.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time

DECOY_PORTS = ("qbdi in", "qbdi out", "daw in", "daw out")
# Holds "daw in" and "daw out" open on the default server until stdin closes.
DAW_DECOY = """
import sys, mido
rt = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
ports = [rt.open_input("daw in", virtual=True, client_name="daw"),
         rt.open_output("daw out", virtual=True, client_name="daw")]
print("ready", flush=True)
sys.stdin.read()
"""


def say(text: str) -> None:
    print(f"jack_decoy: {text}", file=sys.stderr, flush=True)


def default_env() -> dict[str, str]:
    """This environment as a JACK client sees the default server (no private name)."""
    env = {k: v for k, v in os.environ.items() if k != "JACK_DEFAULT_SERVER"}
    return {**env, "JACK_NO_START_SERVER": "1", "PYTHONUNBUFFERED": "1"}


class NotAnswering(Exception):
    """A JACK server holds the default name but does not answer."""


def jack_ports() -> list[str] | None:
    """The default server's ports, or None when it is not running."""
    try:
        probe = subprocess.run(["jack_lsp"], env=default_env(), capture_output=True,
                               text=True, timeout=10)
    except subprocess.TimeoutExpired as err:
        raise NotAnswering from err
    return probe.stdout.splitlines() if probe.returncode == 0 else None


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come within {timeout_s:.0f} s")
        time.sleep(0.1)


def wait_ready(process: subprocess.Popen, what: str, timeout_s: float = 60) -> None:
    """Until ``process`` prints its "ready" line; RuntimeError if it dies or takes longer."""
    if not select.select([process.stdout], [], [], timeout_s)[0]:
        raise RuntimeError(f"{what} was not ready within {timeout_s:.0f} s")
    if "ready" not in process.stdout.readline():
        raise RuntimeError(f"{what} did not start")


def start_decoys() -> list[subprocess.Popen]:
    env = default_env()
    jackd = subprocess.Popen(["jackd", "--no-realtime", "-d", "dummy", "-r", "48000", "-p",
                              "128"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    decoys = [jackd]
    try:
        wait_for(lambda: jack_ports() is not None, 10, "the decoy jackd")
        serve = subprocess.Popen([sys.executable, "-m", "qbdi.cli", "serve", "--backend",
                                  "jack", "--osc-port", "0", "--quiet"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                 start_new_session=True)
        decoys.append(serve)
        wait_ready(serve, "the decoy qbdi serve")
        daw = subprocess.Popen([sys.executable, "-c", DAW_DECOY], env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        decoys.append(daw)
        wait_ready(daw, "the decoy daw client")
        wait_for(lambda: all(any(p.endswith(":" + name) for p in jack_ports() or [])
                             for name in DECOY_PORTS), 10, "the decoy ports")
    except BaseException:
        stop(decoys)
        raise
    return decoys


def stop(decoys: list[subprocess.Popen]) -> None:
    for process in reversed(decoys):  # the clients first, the server last
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main(argv: list[str]) -> int:
    command = argv[argv.index("--") + 1:] if "--" in argv else argv
    if not command:
        say("usage: jack_decoy.py -- COMMAND ...")
        return 2
    if shutil.which("jackd") is None or shutil.which("jack_lsp") is None:
        say("jackd is not installed: running without decoys")
        return subprocess.call(command)
    try:
        running = jack_ports() is not None
    except NotAnswering:
        say("a JACK server holds the default name but does not answer: running beside it")
        return subprocess.call(command)
    if running:
        say("a JACK server already runs under the default name: running beside it, no decoy "
            "added to it")
        return subprocess.call(command)
    started_s = time.monotonic()
    try:
        decoys = start_decoys()
    except (RuntimeError, OSError) as err:
        say(f"could not start the decoys: {err}")
        return 3
    say(f"decoys on the default JACK server ({time.monotonic() - started_s:.1f} s to start): "
        f"jackd, qbdi serve and a daw client, ports {', '.join(DECOY_PORTS)}")
    try:
        try:
            code = subprocess.call(command)
        except KeyboardInterrupt:
            code = 130
        dead = [p.args[0] if p is decoys[0] else " ".join(p.args[1:4]) for p in decoys
                if p.poll() is not None]
        try:
            ports = jack_ports() or []
        except NotAnswering:
            ports = []
        missing = [n for n in DECOY_PORTS if not any(p.endswith(":" + n) for p in ports)]
    finally:
        if len(decoys) > 2 and decoys[2].stdin:
            decoys[2].stdin.close()
        stop(decoys)
    if dead or missing:
        say(f"a decoy did not outlive the command: stopped {dead}, ports gone {missing}")
        return code or 3
    say("the decoys outlived the command, untouched")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
