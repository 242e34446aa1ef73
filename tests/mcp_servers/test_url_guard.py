"""UrlGuard: the SSRF corpus (every class of forbidden target) and what it lets through."""

import ipaddress
import re

import pytest

from mcp_servers.url_guard import (
    HostNotResolved,
    TrustedHost,
    UrlGuard,
    UrlRefused,
    blocked_reason,
    parse_numeric_ipv4,
)

PUBLIC = "93.184.216.34"

# The edge of the world: DNS names resolve only through this table (the machine has no DNS).
DNS = {
    "public.example": [PUBLIC],
    "public6.example": ["2606:2800:220:1:248:1893:25c8:1946"],
    "intranet.example": ["10.20.30.40"],
    "router.example": ["192.168.1.1"],
    "docker.example": ["172.17.0.1"],
    "loop.example": ["127.0.0.1"],
    "loop6.example": ["::1"],
    "metadata.example": ["169.254.169.254"],
    "mapped.example": ["::ffff:10.0.0.1"],
    "ula.example": ["fd00::1"],
    "cgnat.example": ["100.64.0.1"],
    "mixed.example": [PUBLIC, "10.0.0.7"],
    "mixed6.example": ["2606:2800:220:1:248:1893:25c8:1946", "fe80::1"],
}


async def table_resolver(host: str, port: int) -> list[str]:
    if host not in DNS:
        raise HostNotResolved(f"could not resolve host {host!r}")
    return DNS[host]


ANY_PORT = range(1, 65536)


@pytest.fixture
def guard() -> UrlGuard:
    """Address checks alone: every port allowed (the port rule has its own tests below)."""
    return UrlGuard(resolver=table_resolver, allowed_ports=ANY_PORT)


# (url, a phrase the refusal must contain)
SSRF_CORPUS = [
    # loopback
    ("http://127.0.0.1/", "loopback"),
    ("http://127.255.255.254:8080/admin", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://localhost:8000/", "loopback name"),
    ("http://api.localhost/", "loopback name"),
    # private
    ("http://10.0.0.1/", "private"),
    ("http://172.16.5.4/", "private"),
    ("http://172.31.255.255/", "private"),
    ("http://192.168.0.1/", "private"),
    ("http://[fd12:3456::1]/", "unique-local"),
    ("http://100.64.12.1/", "shared"),
    # link-local and cloud metadata
    ("http://169.254.169.254/latest/meta-data/iam/", "link-local"),
    ("http://169.254.170.2/v2/credentials", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fe80::1%25eth0]/", "link-local"),
    # multicast, broadcast, reserved, unspecified
    ("http://224.0.0.1/", "multicast"),
    ("http://239.255.255.250:1900/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://0.0.0.0:8000/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://192.0.2.10/", "documentation"),
    # IPv4 inside IPv6
    ("http://[::ffff:127.0.0.1]/", "127.0.0.1"),
    ("http://[::ffff:169.254.169.254]/", "169.254.169.254"),
    ("http://[::ffff:7f00:1]/", "loopback"),
    ("http://[::ffff:8.8.8.8]/", "IPv4-mapped"),
    ("http://[64:ff9b::10.0.0.1]/", "NAT64"),
    ("http://[2002:a9fe:a9fe::1]/", "6to4"),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo"),
    ("http://[::127.0.0.1]/", "loopback"),
    # numeric tricks
    ("http://2130706433/", "127.0.0.1"),
    ("http://0177.0.0.1/", "127.0.0.1"),
    ("http://0x7f.1/", "127.0.0.1"),
    ("http://0x7f000001/", "127.0.0.1"),
    ("http://127.1/", "127.0.0.1"),
    ("http://0/", "0.0.0.0"),
    ("http://017700000001/", "127.0.0.1"),
    ("http://3232235521/", "192.168.0.1"),
    ("http://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254"),
    ("http://127.0.0.1./", "127.0.0.1"),
    ("http://%31%32%37.0.0.1/", "not a valid host name"),
    ("http://1.2.3.256/", "not a valid"),
    ("http://08.0.0.1/", "not a valid"),
    # schemes
    ("file:///etc/passwd", "only http and https"),
    ("ftp://ftp.example/file", "only http and https"),
    ("gopher://127.0.0.1:6379/_INFO", "only http and https"),
    ("dict://127.0.0.1:11211/stat", "only http and https"),
    ("javascript:alert(1)", "only http and https"),
    ("//public.example/", "only http and https"),
    # names resolving to forbidden addresses
    ("http://intranet.example/", "10.20.30.40"),
    ("http://router.example/", "private"),
    ("http://docker.example:2375/containers/json", "private"),
    ("http://loop.example/", "loopback"),
    ("http://loop6.example/", "loopback"),
    ("http://metadata.example/latest/meta-data/", "link-local"),
    ("http://mapped.example/", "10.0.0.1"),
    ("http://ula.example/", "unique-local"),
    ("http://cgnat.example/", "shared"),
    # one good and one bad address: refused
    ("http://mixed.example/", "10.0.0.7"),
    ("http://mixed6.example/", "fe80::1"),
    # credentials and odd forms
    ("http://user:secret@public.example/", "user name or password"),
    ("http://public.example@127.0.0.1/", "user name or password"),
    ("http:///nohost", "no host"),
    ("http://public.example:99999/", "not a valid"),
    ("http://exa mple.com/", "not a valid"),
]


@pytest.mark.parametrize(("url", "why"), SSRF_CORPUS, ids=[url for url, _ in SSRF_CORPUS])
async def test_ssrf_corpus_is_refused_with_a_clear_reason(guard: UrlGuard, url: str, why: str) -> None:
    with pytest.raises(UrlRefused) as refused:
        await guard.check(url)
    assert why.lower() in str(refused.value).lower()


def test_corpus_covers_enough_cases() -> None:
    assert len(SSRF_CORPUS) >= 25


async def test_credentials_are_not_echoed(guard: UrlGuard) -> None:
    with pytest.raises(UrlRefused) as refused:
        await guard.check("http://admin:hunter2@public.example/")
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "address", "host_header"),
    [
        ("http://public.example/path?q=1", PUBLIC, "public.example"),
        ("https://PUBLIC.example:8443/", PUBLIC, "public.example:8443"),
        ("https://public6.example/", "2606:2800:220:1:248:1893:25c8:1946", "public6.example"),
        ("http://8.8.8.8/", "8.8.8.8", "8.8.8.8"),
        ("http://[2606:4700:4700::1111]:8080/", "2606:4700:4700::1111", "[2606:4700:4700::1111]:8080"),
        ("http://[64:ff9b::8.8.8.8]/", "64:ff9b::808:808", "[64:ff9b::8.8.8.8]"),
    ],
)
async def test_public_targets_pass_with_the_address_to_connect_to(
    guard: UrlGuard, url: str, address: str, host_header: str
) -> None:
    checked = await guard.check(url)
    assert checked.address == address
    assert checked.host_header == host_header
    assert not checked.trusted


async def test_unknown_names_fail_resolution_not_silently(guard: UrlGuard) -> None:
    with pytest.raises(HostNotResolved):
        await guard.check("http://nowhere.example/")


async def test_trusted_hosts_are_exact_host_and_port() -> None:
    guard = UrlGuard(resolver=table_resolver, trusted_hosts=["127.0.0.1:18400", "intranet.example"])
    assert (await guard.check("http://127.0.0.1:18400/sample-upstream/pages/x")).trusted
    assert (await guard.check("https://intranet.example/")).address == "10.20.30.40"
    for other, why in (
        ("http://127.0.0.1:18401/", "port 18401 is not an allowed port"),
        ("http://127.0.0.1/", "loopback"),
        ("http://2130706433:18400/", "port 18400"),  # another spelling of the host is another host
        ("http://[::1]:18400/", "port 18400 is not an allowed port"),
        ("http://intranet.example:9000/", "port 9000"),  # a bare trusted host: allowed ports only
    ):
        with pytest.raises(UrlRefused, match=re.escape(why)):
            await guard.check(other)


# (url, why) with the default ports: only 80 and 443, whatever the scheme, the host or its addresses.
PORT_CORPUS = [
    ("http://public.example:8080/", "port 8080 is not an allowed port (allowed: 80, 443)"),
    ("https://public.example:8443/", "port 8443"),
    ("http://public.example:6379/", "port 6379"),  # Redis
    ("http://public.example:22/", "port 22"),
    ("http://8.8.8.8:25/", "port 25"),
    ("http://[2606:4700:4700::1111]:5432/", "port 5432"),
    ("http://127.0.0.1:6379/", "port 6379"),  # refused before the address is even looked at
    ("https://public.example:080/", None),  # leading zero: still port 80
    ("http://public.example:443/", None),
    ("https://public.example:80/", None),
    ("http://public.example:80/", None),
]


@pytest.mark.parametrize(("url", "why"), PORT_CORPUS, ids=[url for url, _ in PORT_CORPUS])
async def test_only_web_ports_by_default(url: str, why: str | None) -> None:
    guard = UrlGuard(resolver=table_resolver)
    if why is None:
        assert (await guard.check(url)).address == PUBLIC
    else:
        with pytest.raises(UrlRefused, match=re.escape(why)):
            await guard.check(url)


async def test_refused_ports_are_not_resolved() -> None:
    looked_up: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return [PUBLIC]

    with pytest.raises(UrlRefused, match="port 8080"):
        await UrlGuard(resolver=resolver).check("http://secret-data.attacker.example:8080/")
    assert looked_up == []  # no DNS query carries the name out either


async def test_operators_choose_the_ports() -> None:
    guard = UrlGuard(resolver=table_resolver, allowed_ports=[443, 8443])
    assert (await guard.check("https://public.example:8443/")).port == 8443
    with pytest.raises(UrlRefused, match=re.escape("port 80 is not an allowed port (allowed: 443, 8443)")):
        await guard.check("http://public.example/")
    with pytest.raises(ValueError, match="not valid TCP ports"):
        UrlGuard(allowed_ports=[0, 443])


async def test_a_trusted_entry_with_a_port_allows_that_port_for_its_host_only() -> None:
    # The offline sample upstream: the Serve port, below its route prefix.
    guard = UrlGuard(resolver=table_resolver, trusted_hosts=["127.0.0.1:18000/sample-upstream"])
    assert (await guard.check("http://127.0.0.1:18000/sample-upstream/pages/lisbon.html")).trusted
    assert (await guard.check("http://127.0.0.1:18000/robots.txt")).trusted
    with pytest.raises(UrlRefused, match="loopback"):  # the port is fine, the address check is not
        await guard.check("http://127.0.0.1:18000/llm/v1/models")
    with pytest.raises(UrlRefused, match="port 18000"):  # another host on that port
        await guard.check("http://public.example:18000/")


async def test_resolver_answering_garbage_is_refused() -> None:
    async def broken(host: str, port: int) -> list[str]:
        return ["not-an-ip"]

    with pytest.raises(UrlRefused, match="resolver returned"):
        await UrlGuard(resolver=broken).check("http://public.example/")


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("192.168.257", "192.168.1.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0xffffffff", "255.255.255.255"),
        ("0x", "0.0.0.0"),
    ],
)
def test_numeric_hosts_decode_like_inet_aton(host: str, address: str) -> None:
    assert parse_numeric_ipv4(host) == ipaddress.IPv4Address(address)


@pytest.mark.parametrize("host", ["example.com", "1.2.3.4.5", "1.2.3.com", "0x1g"])
def test_names_are_not_numeric(host: str) -> None:
    assert parse_numeric_ipv4(host) is None


@pytest.mark.parametrize("host", ["4294967296", "1.16777216", "256.1.1.1", "09.1.1.1"])
def test_out_of_range_numeric_hosts_are_refused(host: str) -> None:
    with pytest.raises(UrlRefused):
        parse_numeric_ipv4(host)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2002:808:808::1"])
def test_global_addresses_are_allowed(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_trusted_host_entries_parse() -> None:
    assert TrustedHost.parse("127.0.0.1:18400") == TrustedHost("127.0.0.1", 18400)
    assert TrustedHost.parse("Sample.Upstream.") == TrustedHost("sample.upstream")
    assert TrustedHost.parse("[::1]:8000/sample-upstream/") == TrustedHost("::1", 8000, "/sample-upstream")
    for bad in (":80", "host:80/x?y=1"):
        with pytest.raises(ValueError):
            TrustedHost.parse(bad)


@pytest.mark.parametrize(
    ("path", "trusted"),
    [
        ("/sample-upstream", True),
        ("/sample-upstream/pages/lisbon.html?x=1", True),
        ("/robots.txt", True),  # robots.txt of a trusted site stays readable
        ("/", False),
        ("/llm/v1/models", False),
        ("/sample-upstream-evil/x", False),
        ("/sample-upstream/../llm/v1/models", False),
        ("/sample-upstream/%2e%2e/llm/v1/models", False),
    ],
)
async def test_trusted_path_prefix_scopes_the_exception(path: str, trusted: bool) -> None:
    guard = UrlGuard(resolver=table_resolver, trusted_hosts=["127.0.0.1:18400/sample-upstream"])
    url = f"http://127.0.0.1:18400{path}"
    if trusted:
        assert (await guard.check(url)).trusted
    else:
        with pytest.raises(UrlRefused, match="loopback"):
            await guard.check(url)
