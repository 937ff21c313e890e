# qbdi, headless: `qbdi serve` on JACK's dummy driver (virtual MIDI ports without a sound
# card, OSC on UDP 9000), and `qbdi render` / `qbdi analyze` on mounted files.
# See docs/docker.md for the `docker run` lines, and scripts/docker-test.sh for the checks
# this image passes (built and run by CI).
#
# Needs BuildKit (the default builder since Docker 23; with Docker 20.10, DOCKER_BUILDKIT=1).
#
#   docker build -t qbdi .
#
# Behind a TLS proxy with its own CA (corporate networks, some CI machines), pass the CA
# bundle as a build secret; it is mounted for the RUN steps that download and is in no layer:
#
#   docker build --secret id=extra_ca,src=/usr/local/share/ca-certificates/proxy.crt -t qbdi .
#
# BASE: any Debian-based image with Python 3.11 and `python3 -m venv` (scripts/docker-test.sh
# builds one with debootstrap where python:3.11-slim cannot be pulled).
ARG BASE=python:3.11-slim

# ---- requirements: what pyproject.toml asks for at run time, and qbdi's build backend ----
# Its own stage, so a change elsewhere in pyproject.toml keeps the installed packages cached.
FROM ${BASE} AS requirements
COPY pyproject.toml /
RUN python3 -c 'import tomllib; p = tomllib.load(open("/pyproject.toml", "rb")); \
print("\n".join(p["project"]["dependencies"] + p["build-system"]["requires"]))' \
    > /requirements.txt

# ---- build: a virtual environment with qbdi and what serve, render and analyze import ----
FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# binutils: `strip`, for this stage only.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
WORKDIR /src
# The dependencies first, so a change to qbdi's code reuses them.
# No torch: serving, rendering and analysis run the model in numpy (torch is only for
# `qbdi train`, the `train` extra). Every package installs from a wheel: no compilers.
# setuptools is qbdi's build backend, for the offline install below.
# Then, about 40 MB less: the wheels' test suites, type stubs and C/Cython sources and
# headers go (nothing reads them at run time), and the extension modules lose their symbol
# tables (`strip --strip-unneeded`; the libraries bundled in *.libs are left as they are),
# checked by importing every extension module before and after.
COPY --from=requirements /requirements.txt ./
COPY docker/import_check.py ./
RUN --mount=type=secret,id=extra_ca \
    set -eu; \
    if [ -s /run/secrets/extra_ca ]; then \
        cat /etc/ssl/certs/ca-certificates.crt /run/secrets/extra_ca > /tmp/ca.pem; \
        export PIP_CERT=/tmp/ca.pem; \
    fi; \
    /opt/venv/bin/pip install --only-binary=:all: -r requirements.txt; \
    rm -f /tmp/ca.pem; \
    find /opt/venv/lib -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} +; \
    find /opt/venv/lib -path '*/site-packages/*' -type f \
        \( -name '*.pyi' -o -name '*.c' -o -name '*.cpp' -o -name '*.h' -o -name '*.hpp' \
           -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' \) -delete; \
    /opt/venv/bin/python -B import_check.py > /tmp/before.txt; \
    find /opt/venv/lib -name '*.so' -not -path '*.libs/*' -exec strip --strip-unneeded {} +; \
    /opt/venv/bin/python -B import_check.py > /tmp/after.txt; \
    diff /tmp/before.txt /tmp/after.txt; \
    rm /tmp/before.txt /tmp/after.txt
COPY pyproject.toml README.md ./
COPY qbdi ./qbdi
COPY models ./models
COPY channel ./channel
COPY analysis ./analysis
COPY server ./server
COPY presets ./presets
# A normal (not editable) install, offline: the shipped model and presets are package data.
# Then pip and setuptools leave: the image installs nothing at run time.
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation --no-index . \
    && /opt/venv/bin/pip uninstall -y -q setuptools pip \
    && rm -rf /opt/venv/bin/pip* /opt/venv/bin/[Aa]ctivate*

# ---- the image ----
FROM ${BASE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    JACK_NO_START_SERVER=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib

# jackd2: the JACK server and its dummy driver; libasound2 comes with it (ALSA for
# --device /dev/snd hosts). The JACK client library is inside python-rtmidi's wheel.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends jackd2 \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin qbdi \
    && mkdir -p /work && chown qbdi:qbdi /work

COPY --from=build /opt/venv /opt/venv
COPY docker/entrypoint.sh /usr/local/bin/qbdi-entrypoint

USER qbdi
WORKDIR /work

# OSC control (UDP). Feedback goes to --feedback HOST:PORT, outbound.
EXPOSE 9000/udp

ENTRYPOINT ["qbdi-entrypoint"]
CMD ["serve"]
