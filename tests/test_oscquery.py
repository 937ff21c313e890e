"""OSC discovery: the OSCQuery namespace, fetched over real HTTP from ``qbdi serve
--oscquery``, against the one address table; its ranges against what the handlers really
accept; the mDNS announcement on loopback; and the options' refusals."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from qbdi.models.checkpoint import default_checkpoint_path, shipped_models
from qbdi.presets import list_presets, load_preset
from qbdi.server import osc
from qbdi.server.mdns import OSC_TYPE, OSCQUERY_TYPE, MdnsAdvert, lan_addresses
from qbdi.server.oscquery import HostInfo, Namespace, respond
from qbdi.settings import changed
from tests.studio_surface import refusal
from tests.web_rig import osc_client, serve


def _get(host: str, port: int, path: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as reply:
            body = reply.read()
            return reply.status, json.loads(body) if body else None
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.fixture(scope="module")
def served():
    with serve("--oscquery", "0", "--preset", "default") as served:
        yield served


def test_the_namespace_over_http_is_the_address_table(served):
    host, port = served.oscquery
    status, root = _get(host, port, "/")
    assert status == 200 and root["FULL_PATH"] == "/"
    assert "(mDNS)" not in served.ready_line  # loopback: nothing announced
    default_model = next(name for name, path in shipped_models().items()
                         if path == default_checkpoint_path())
    state = changed(load_preset("default"), model=default_model)  # as serve starts
    leaves = {}

    def walk(node):
        if "CONTENTS" in node:
            for child in node["CONTENTS"].values():
                walk(child)
        else:
            leaves[node["FULL_PATH"]] = node

    walk(root)
    assert set(leaves) == {row.address for row in osc.TABLE}
    for row in osc.TABLE:
        node = leaves[row.address]
        assert node["DESCRIPTION"] == row.doc
        assert node["ACCESS"] == (3 if row.report is not None else 2)
        if row.report is not None:
            assert node["VALUE"] == row.report(state)
        if row.value is None:
            assert "TYPE" not in node and "RANGE" not in node
            continue
        assert node["TYPE"] == row.value.tag
        (entry,) = node["RANGE"]
        if row.value.choices == "presets":
            assert entry == {"VALS": list_presets()}
        elif row.value.choices == "models":  # every model loaded at start-up
            assert entry == {"VALS": list(shipped_models())}
        elif row.value.vals:
            assert entry == {"VALS": list(row.value.vals)}
        else:
            assert entry == {"MIN": row.value.low, "MAX": row.value.high}
        assert _get(host, port, row.address)[1] == node  # each node at its own path


def test_attributes_host_info_and_unknown_paths(served):
    host, port = served.oscquery
    status, info = _get(host, port, "/?HOST_INFO")
    assert status == 200 and info["OSC_PORT"] == served.osc_port
    assert info["OSC_TRANSPORT"] == "UDP" and info["OSC_IP"] == "127.0.0.1"
    assert info["EXTENSIONS"]["RANGE"] and not info["EXTENSIONS"]["LISTEN"]
    assert _get(host, port, "/qbdi/mode?TYPE") == (200, {"TYPE": "s"})
    assert _get(host, port, "/qbdi/panic?VALUE")[0] == 204
    assert _get(host, port, "/qbdi/nothing")[0] == 404
    assert _get(host, port, "/qbdi/bits?NOPE")[0] == 400
    with osc_client(served.osc_port) as client:  # VALUE follows the live state
        client.send("/qbdi/bits", 48)
        assert client.value("/qbdi/bits") == [48]
    assert _get(host, port, "/qbdi/bits?VALUE") == (200, {"VALUE": [48]})


def _just_inside(low: float, high: float) -> list[float]:
    return [low + (high - low) * 1e-6, high - (high - low) * 1e-6]


@pytest.mark.parametrize("row", [r for r in osc.TABLE if r.value is not None],
                         ids=lambda r: r.address)
def test_each_range_is_what_the_server_accepts(row):
    """Every advertised value is accepted and the advertised bounds are the real ones,
    through the real control path (a refused bound is one marked open)."""
    arg = row.value
    if row.address == "/qbdi/preset":
        for name in list_presets():
            assert refusal(row.address, [name]) is None
        return
    if arg.choices == "models":  # the served list is checked over HTTP above
        assert "no model named" in refusal(row.address, ["no-such-model"])
        return
    if arg.vals:
        for value in arg.vals:
            assert refusal(row.address, [value]) is None, value
        assert refusal(row.address, [7 if arg.tag == "s" else "nope"]) is not None
        return
    number = float if arg.tag == "f" else int
    low, high = arg.low, arg.high
    assert (refusal(row.address, [number(low)]) is not None) == arg.low_open
    assert (refusal(row.address, [number(high)]) is not None) == arg.high_open
    step = 1e-3 if arg.tag == "f" else 1
    assert refusal(row.address, [number(low - step)]) is not None
    if high < 2**31 - 1:  # above: no OSC int32 can say more
        assert refusal(row.address, [number(high + step)]) is not None
    if arg.tag == "f":
        for inside in _just_inside(low, high):
            assert refusal(row.address, [inside]) is None
    for word in arg.also:
        assert refusal(row.address, [word]) is None


def test_the_namespace_offers_the_users_presets():
    namespace = Namespace(HostInfo(9000), choices={"presets": ["mine", "default"]})
    assert respond(namespace, "/qbdi/preset", "RANGE") == (
        200, {"RANGE": [{"VALS": ["mine", "default"]}]})
    assert "OSC_IP" not in respond(namespace, "/", "HOST_INFO")[1]


def test_mdns_announces_oscquery_and_osc_on_loopback():
    """Announce on loopback only (no packet leaves this machine) and look the services up
    with a second, independent zeroconf instance."""
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

    async def announce_and_browse() -> tuple[list[str], dict[str, tuple]]:
        advert = MdnsAdvert("127.0.0.1", name="qbdi-test")
        await advert.start([(OSCQUERY_TYPE, 9123), (OSC_TYPE, 9124)])
        registered = await asyncio.wait_for(advert.announced(), 10)
        browser_zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
        found: dict[str, tuple] = {}
        names: list[tuple[str, str]] = []
        browser = AsyncServiceBrowser(
            browser_zc.zeroconf, [OSCQUERY_TYPE, OSC_TYPE],
            handlers=[lambda zeroconf, service_type, name, state_change:
                      names.append((service_type, name))])
        for _ in range(50):
            await asyncio.sleep(0.1)
            if len({t for t, _ in names}) == 2:
                break
        for service_type, name in names:
            info = await browser_zc.async_get_service_info(service_type, name, 3000)
            if info is not None and name.startswith("qbdi-test"):
                found[service_type] = (info.port, info.parsed_addresses())
        await browser.async_cancel()
        await browser_zc.async_close()
        await advert.stop()
        return registered, found

    registered, found = asyncio.run(announce_and_browse())
    if not registered:
        pytest.skip("no multicast on loopback here: zeroconf could not announce")
    assert found == {OSCQUERY_TYPE: (9123, ["127.0.0.1"]), OSC_TYPE: (9124, ["127.0.0.1"])}


def test_lan_addresses_never_announce_loopback():
    assert lan_addresses("192.168.1.20") == ["192.168.1.20"]
    assert all(not a.startswith("127.") for a in lan_addresses("0.0.0.0"))


def _serve_exit(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qbdi.cli", "serve", "--backend", "memory",
                           "--osc-port", "0", *flags], capture_output=True, text=True,
                          timeout=60)


def test_an_open_web_bind_needs_an_allowlist_and_a_taken_port_fails_loudly():
    result = _serve_exit("--web", "0", "--web-host", "0.0.0.0")
    assert result.returncode == 2 and "--web-allow" in result.stderr
    result = _serve_exit("--web", "0", "--web-host", "0.0.0.0", "--web-allow", "my-phone")
    assert result.returncode == 2 and "not an IP address" in result.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for flags in (("--web", str(port)), ("--oscquery", str(port))):
            result = _serve_exit(*flags)
            assert result.returncode == 2, result.stderr
            assert f"cannot listen for HTTP on 127.0.0.1:{port}" in result.stderr
            assert "Traceback" not in result.stderr
