"""What every check of scripts/docker_checks.py shares: the failure it raises, its ``ok:``
line, and the ``docker`` CLI with the run's label on every container."""

from __future__ import annotations

import subprocess

IMAGE_UID = 10001


class CheckFailed(Exception):
    """A check found the image wrong; its message says how."""


def ok(message: str) -> None:
    print(f"ok: {message}", flush=True)


def require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


class Docker:
    """The ``docker`` CLI ``cli`` for one image; every container it starts carries ``label``,
    so the script that runs the checks can remove what a failed check left behind."""

    def __init__(self, cli: str, image: str, label: str) -> None:
        self.cli, self.image, self.label = cli, image, label

    def run(self, *args: str, timeout: float = 120, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([self.cli, *args], capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise CheckFailed(f"`docker {' '.join(args)}` exited {result.returncode}:\n"
                              f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
        return result

    def run_image(self, *args: str, options: tuple[str, ...] = (), timeout: float = 300,
                  check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("run", "--rm", "--label", self.label, *options, self.image, *args,
                        timeout=timeout, check=check)
