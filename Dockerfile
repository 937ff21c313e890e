# qbdi, headless: `qbdi serve` on JACK's dummy driver (virtual MIDI ports without a sound
# card, OSC on UDP 9000), and `qbdi render` / `qbdi analyze` on mounted files.
# See docs/docker.md for the `docker run` lines and for what was and wasn't verified.
FROM python:3.11-slim

# No torch: serving, rendering and analysis run the model in numpy (torch is only for
# `qbdi train`, the `train` extra), which keeps the image small and every download on the
# package registries apt and pip are set up for.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEBIAN_FRONTEND=noninteractive \
    JACK_NO_START_SERVER=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib

# jackd2: the JACK server and its dummy driver; libasound2 comes with it (ALSA for
# --device /dev/snd hosts). No compilers: every Python package installs from a wheel.
RUN apt-get update \
    && apt-get install -y --no-install-recommends jackd2 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/qbdi
COPY pyproject.toml README.md ./
COPY qbdi ./qbdi
COPY models ./models
COPY channel ./channel
COPY analysis ./analysis
COPY server ./server
COPY presets ./presets
COPY docker/entrypoint.sh /usr/local/bin/qbdi-entrypoint
# A normal (not editable) install: the shipped model and presets are package data.
RUN pip install . && rm -rf /opt/qbdi/build

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin qbdi \
    && mkdir -p /work && chown qbdi:qbdi /work
USER qbdi
WORKDIR /work

# OSC control (UDP). Feedback goes to --feedback HOST:PORT, outbound.
EXPOSE 9000/udp

ENTRYPOINT ["qbdi-entrypoint"]
CMD ["serve"]
