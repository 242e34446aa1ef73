"""Decide whether a URL may be fetched on someone else's behalf, and which address to connect to.

A tool that fetches URLs chosen by a model (which any web page it read can steer) makes requests from
inside the cluster: a server-side request forgery target. :class:`UrlGuard` allows only http(s) URLs
on the web ports (80 and 443 unless the operator allows more) whose host resolves exclusively to
globally routable addresses, and returns the checked address so the caller connects to exactly that
address (no second DNS lookup an attacker's DNS could answer differently). Other ports are refused
because that is where internal services answer (Redis, databases, admin consoles). Exceptions for
trusted hosts are operator configuration, never a request parameter.
"""

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# (host, port) -> the host's addresses as strings. The default asks the system resolver; tests and
# deployments with their own DNS view inject another.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

DEFAULT_PORTS = {"http": 80, "https": 443}
DEFAULT_ALLOWED_PORTS = (80, 443)
ROBOTS_PATH = "/robots.txt"

# Ranges never fetched, with the phrase errors use. Explicit rather than trusting ``is_private``/
# ``is_global`` alone: those flags changed between Python patch releases (CVE-2024-4032). Where an IPv6
# address embeds an IPv4 one (mapped, NAT64, 6to4, Teredo), the embedded address is checked first.
_BLOCKED_RANGES: list[tuple[str, str]] = [
    ("0.0.0.0/8", "an unspecified ('this network') address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address (where cloud metadata services live)"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an IETF protocol assignment address"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a 6to4 relay anycast address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("255.255.255.255/32", "the broadcast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("::/128", "the unspecified address"),
    ("::1/128", "a loopback address"),
    ("::/96", "an IPv4-compatible IPv6 address (deprecated)"),
    ("::ffff:0:0/96", "an IPv4-mapped IPv6 address (use the IPv4 address)"),
    ("::ffff:0:0:0/96", "an IPv4-translated IPv6 address"),
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    ("100::/64", "a discard-only address"),
    ("2001::/23", "an IETF protocol assignment address (Teredo, benchmarking, ORCHID)"),
    ("2001:db8::/32", "a documentation address"),
    ("3fff::/20", "a documentation address"),
    ("5f00::/16", "a segment-routing (SRv6) address"),
    ("fc00::/7", "a unique-local (private) address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
]
_BLOCKED_NETWORKS = [(ipaddress.ip_network(net), reason) for net, reason in _BLOCKED_RANGES]
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")

_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+", re.IGNORECASE)
_CANONICAL_IPV4 = re.compile(r"(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,2})){3}")
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?")


class UrlRefused(ValueError):
    """The URL is not fetched: its scheme, form or addresses are not allowed (the message says which)."""


class HostNotResolved(OSError):
    """The URL's host name has no address (DNS failure)."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """IPv4 addresses an IPv6 address carries and that a translator or tunnel may deliver to."""
    found: list[tuple[str, ipaddress.IPv4Address]] = []
    if address in _IPV4_COMPATIBLE and int(address) > 0xFFFF:  # not :: or ::1
        found.append(("IPv4-compatible", ipaddress.IPv4Address(int(address))))
    if address.ipv4_mapped is not None:
        found.append(("IPv4-mapped", address.ipv4_mapped))
    if address in _NAT64 or address in _TRANSLATED:
        found.append(("NAT64/translated", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)))
    if address.sixtofour is not None:
        found.append(("6to4", address.sixtofour))
    if address.teredo is not None:
        server, client = address.teredo
        found += [("Teredo server", server), ("Teredo client", client)]
    return found


def blocked_reason(address: IPAddress) -> str | None:
    """Why ``address`` must not be connected to (a phrase such as 'a loopback address'), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        for label, embedded in _embedded_ipv4(address):
            reason = blocked_reason(embedded)
            if reason:
                return f"an IPv6 address embedding {embedded} ({label}), {reason}"
    for network, reason in _BLOCKED_NETWORKS:
        if address in network:
            return reason
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return "a scoped (zone-local) IPv6 address"
    if address.is_multicast:
        return "a multicast address"
    if not address.is_global:
        return "not a globally routable address"
    return None


def parse_numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address a host made of numbers means to ``inet_aton``, or None when ``host`` is not numeric.

    Such hosts (``127.1``, ``0x7f.1``, ``2130706433``, ``0177.0.0.1``) are read differently by resolvers
    and URL parsers, so they are decoded here instead of being handed to one.
    """
    labels = host.rstrip(".").split(".")
    if not 1 <= len(labels) <= 4 or not all(_NUMERIC_LABEL.fullmatch(label) for label in labels):
        return None
    try:
        values = [
            int(label[2:] or "0", 16)
            if label[:2].lower() == "0x"
            else int(label, 8)
            if len(label) > 1 and label.startswith("0")
            else int(label)
            for label in labels
        ]
    except ValueError:
        raise UrlRefused(f"{host!r} is not a valid numeric IPv4 address") from None
    *leading, last = values
    if any(value > 255 for value in leading) or last >= 256 ** (5 - len(values)):
        raise UrlRefused(f"{host!r} is not a valid numeric IPv4 address")
    number = last
    for index, value in enumerate(leading):
        number |= value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def _ip_literal(host: str) -> IPAddress | None:
    """The address when ``host`` is an IP literal; refuses numeric forms other than dotted decimal."""
    if ":" in host:
        try:
            return ipaddress.IPv6Address(unquote(host))
        except ValueError:
            raise UrlRefused(f"{host!r} is not a valid IPv6 address") from None
    numeric = parse_numeric_ipv4(host)
    if numeric is None:
        return None
    if not _CANONICAL_IPV4.fullmatch(host):
        reason = blocked_reason(numeric)
        meaning = f"{numeric}, {reason}" if reason else str(numeric)
        raise UrlRefused(
            f"host {host!r} is a non-standard numeric IPv4 form (it means {meaning}); "
            "write IPv4 addresses as four decimal numbers"
        )
    return numeric


async def system_resolver(host: str, port: int) -> list[str]:
    """The system resolver's addresses for ``host`` (``loop.getaddrinfo``), without duplicates."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise HostNotResolved(f"could not resolve host {host!r}: {exc.strerror or exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class TrustedHost:
    """An operator's exception to the address checks: a host, optionally one port and one path prefix.

    An entry that names its port also allows that port for its host (the offline sample server on the
    Serve port); a bare host is trusted on the allowed ports only: trusting a server's web site is not
    trusting every service it runs.
    """

    host: str
    port: int | None = None  # None: any port
    path_prefix: str = ""  # "" : any path; else "/prefix" matches "/prefix" and "/prefix/..."

    @classmethod
    def parse(cls, entry: str) -> "TrustedHost":
        """``'host'``, ``'host:port'`` or ``'host:port/path/prefix'`` (``'[v6]:port'`` for IPv6)."""
        parts = urlsplit("//" + entry.strip())
        if not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"trusted host {entry!r} is not 'host', 'host:port' or 'host:port/path-prefix'")
        return cls(parts.hostname.rstrip("."), parts.port, parts.path.rstrip("/"))

    def matches(self, host: str, port: int, path: str) -> bool:
        """Whether a request to ``host:port`` for ``path`` falls under this entry (no ``..`` escapes)."""
        if host.rstrip(".") != self.host or self.port not in (None, port):
            return False
        if not self.path_prefix or path == ROBOTS_PATH:  # a trusted site's robots.txt is always readable
            return True
        if ".." in path.split("/"):
            return False
        return path == self.path_prefix or path.startswith(self.path_prefix + "/")


@dataclass(frozen=True)
class CheckedUrl:
    """A URL that passed the guard and the address to connect to for it."""

    url: httpx.URL
    host: str  # ASCII (IDNA) host name or IP literal, lower case, no brackets
    port: int
    address: str  # the checked address: connect here, not to whatever a new lookup returns
    trusted: bool

    @property
    def origin(self) -> tuple[str, str, int]:
        """(scheme, host, port): the site whose robots.txt governs this URL."""
        return self.url.scheme, self.host, self.port

    @property
    def host_header(self) -> str:
        """The Host header for the original name (port only when not the scheme's default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if DEFAULT_PORTS[self.url.scheme] == self.port else f"{host}:{self.port}"

    def pinned_request(self, client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Request:
        """A GET to the checked address, which still names the original host.

        The Host header carries the original name and, for https, so do TLS SNI and the certificate check
        (httpcore's ``sni_hostname`` extension).
        """
        target = self.url.copy_with(host=self.address, port=self.port, fragment=None)
        extensions = {"sni_hostname": self.host} if self.url.scheme == "https" else {}
        return client.build_request(
            "GET", target, headers={**headers, "Host": self.host_header}, extensions=extensions
        )


class UrlGuard:
    """Checks URLs against the rules in this module's docstring; reusable by any fetching tool."""

    def __init__(
        self,
        *,
        resolver: Resolver | None = None,
        trusted_hosts: Iterable[str] = (),
        schemes: Iterable[str] = ("http", "https"),
        allowed_ports: Iterable[int] = DEFAULT_ALLOWED_PORTS,
    ) -> None:
        """Set the operator's rules; neither list may ever come from a tool argument.

        Args:
            resolver: replaces the system resolver (tests, deployments with their own DNS view).
            trusted_hosts: :meth:`TrustedHost.parse` forms that skip the address checks: an operator's
                own sample or intranet server.
            schemes: the URL schemes fetched (http and https at most).
            allowed_ports: the ports any URL may use (an explicit port of a trusted entry is allowed too).
        """
        self._resolve = resolver or system_resolver
        self._trusted = [TrustedHost.parse(entry) for entry in trusted_hosts]
        self._schemes = frozenset(schemes)
        unknown = self._schemes - DEFAULT_PORTS.keys()
        if unknown:
            raise ValueError(f"unsupported schemes: {sorted(unknown)}")
        self._ports = frozenset(allowed_ports)
        invalid = sorted(port for port in self._ports if not 0 < port < 65536)
        if invalid:
            raise ValueError(f"not valid TCP ports: {invalid}")

    def is_trusted(self, host: str, port: int, path: str = "/") -> bool:
        """Whether an operator's trusted entry covers this request (it then skips the address checks)."""
        return any(trusted.matches(host.lower(), port, path) for trusted in self._trusted)

    def _port_refusal(self, host: str, port: int) -> str | None:
        """Why ``port`` may not be used, or None.

        Allowed are the allowed ports and any port a trusted entry of ``host`` names, whatever its path
        prefix (other paths still get the address checks).
        """
        name = host.rstrip(".")
        if port in self._ports or any(e.host == name and e.port == port for e in self._trusted):
            return None
        if len(self._ports) > 6:
            return f"port {port} is not an allowed port"
        allowed = ", ".join(map(str, sorted(self._ports))) or "none"
        return f"port {port} is not an allowed port (allowed: {allowed})"

    async def check(self, url: str | httpx.URL) -> CheckedUrl:
        """The URL with its address to connect to; raises :class:`UrlRefused` or :class:`HostNotResolved`."""
        parsed = _parse(url)
        host, port = self._host_and_port(parsed, url)
        trusted = self.is_trusted(host, port, parsed.path)
        try:
            literal = _ip_literal(host)
        except UrlRefused as exc:
            raise UrlRefused(f"refusing to fetch {url}: {exc}") from None
        if literal is not None:
            reason = None if trusted else blocked_reason(literal)
            if reason:
                raise UrlRefused(f"refusing to fetch {url}: {literal} is {reason}")
            return CheckedUrl(parsed, host, port, str(literal), trusted)
        addresses = await self._addresses(host, port, url, trusted=trusted)
        return CheckedUrl(parsed, host, port, addresses[0], trusted)

    def _host_and_port(self, parsed: httpx.URL, url: str | httpx.URL) -> tuple[str, int]:
        """The URL's host (lower case) and port, once its scheme, credentials and port are allowed."""
        scheme = parsed.scheme
        if scheme not in self._schemes:
            allowed = " and ".join(sorted(self._schemes))
            raise UrlRefused(f"only {allowed} URLs can be fetched, not {scheme or 'scheme-less'} URLs: {url}")
        if parsed.userinfo:
            raise UrlRefused(f"URLs with a user name or password are not fetched: {_redacted(parsed)}")
        host = parsed.raw_host.decode("ascii").lower()
        if not host:
            raise UrlRefused(f"URL has no host: {url}")
        port = parsed.port if parsed.port is not None else DEFAULT_PORTS[scheme]
        if not 0 < port < 65536:
            raise UrlRefused(f"port {port} is not a valid TCP port: {url}")
        refusal = self._port_refusal(host, port)
        if refusal:  # before any lookup: nothing is resolved for a URL that is refused anyway
            raise UrlRefused(f"refusing to fetch {url}: {refusal}")
        return host, port

    async def _addresses(self, host: str, port: int, url: str | httpx.URL, *, trusted: bool) -> list[str]:
        """The addresses of host name ``host``, every one of them allowed unless the URL is trusted."""
        if not _HOST_NAME.fullmatch(host) or len(host) > 254:
            raise UrlRefused(f"{host!r} is not a valid host name: {url}")
        name = host.rstrip(".")
        if not trusted and (name == "localhost" or name.endswith(".localhost")):
            raise UrlRefused(f"refusing to fetch {url}: {host!r} is a loopback name")
        addresses = list(await self._resolve(name, port))
        if not addresses:
            raise HostNotResolved(f"could not resolve host {host!r}: no addresses")
        if not trusted:
            for text in addresses:
                try:
                    address = ipaddress.ip_address(text)
                except ValueError:
                    raise UrlRefused(f"refusing to fetch {url}: resolver returned {text!r}") from None
                reason = blocked_reason(address)
                if reason:
                    raise UrlRefused(f"refusing to fetch {url}: {host!r} resolves to {address}, {reason}")
        return addresses


def _parse(url: str | httpx.URL) -> httpx.URL:
    if isinstance(url, httpx.URL):
        return url
    try:
        return httpx.URL(url.strip())
    except httpx.InvalidURL as exc:
        # httpx rejects some numeric hosts (e.g. octal '0177.0.0.1'); say what they would have meant.
        hostname = urlsplit(url.strip()).hostname or ""
        try:
            _ip_literal(hostname)
        except UrlRefused as numeric:
            raise UrlRefused(f"refusing to fetch {url}: {numeric}") from exc
        raise UrlRefused(f"not a valid URL ({exc}): {url}") from exc


def _redacted(url: httpx.URL) -> str:
    return str(url.copy_with(username=None, password=None))
