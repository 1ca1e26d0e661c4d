"""Recipient entries: email addresses in their usual forms, and group URIs to expand."""

import email.utils
import functools
import re
from collections.abc import Callable
from typing import Any


# Deliberately permissive (any domain name, no deliverability check): deployments store
# addresses such as ``alice@localhost``, which stricter validators refuse.
_ADDR_SPEC = re.compile(
    r"^[^\s@<>()\[\]\\,;:\"]+@[^\W_](?:[\w-]*[^\W_])?(?:\.[^\W_](?:[\w-]*[^\W_])?)*$"
)
_NAMED = re.compile(r"^(?P<name>[^<>\r\n]*?)\s*<(?P<addr>[^<>]*)>$")
GROUP_URI = re.compile(r"^/buckets/(?P<bucket_id>[^/\s]+)/groups/(?P<group_id>[^/\s]+)$")


def is_group_uri(entry: object) -> bool:
    return isinstance(entry, str) and entry.startswith("/buckets/")


def ascii_address(address: str) -> str | None:
    """The address with its domain in IDNA, or ``None``: SMTP and headers need ASCII.

    A non-ASCII local part would need SMTPUTF8, which pyramid_mailer doesn't speak.
    """
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        return None
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return None


def is_email(address: str) -> bool:
    return bool(_ADDR_SPEC.match(address)) and ascii_address(address) is not None


def parse_address(entry: object) -> tuple[str, str] | None:
    """Return ``(display name, address)`` for a valid entry, else ``None``.

    Accepts ``alice@example.com``, ``Alice <alice@example.com>`` and ``<alice@example.com>``.
    """
    return _parse_address(entry) if isinstance(entry, str) else None


# Hooks name the same few addresses on every write: each is parsed once.
@functools.lru_cache(maxsize=4096)
def _parse_address(entry: str) -> tuple[str, str] | None:
    if any(c in entry for c in "\r\n\0"):
        return None
    entry = entry.strip()
    named = _NAMED.match(entry)
    if named:
        name, address = named.group("name").strip().strip('"'), named.group("addr").strip()
    else:
        name, address = "", entry
    ascii = ascii_address(address) if _ADDR_SPEC.match(address) else None  # ``is_email``
    return None if ascii is None else (name, ascii)


def at_domains(address: str, domains: tuple[str, ...]) -> bool:
    """Whether an ASCII address is at one of ``domains`` or below one (``a.example.com``)."""
    domain = address.rpartition("@")[2].lower()
    return any(domain == d or domain.endswith(f".{d}") for d in domains)


def format_address(entry: object) -> str | None:
    return _format_address(entry) if isinstance(entry, str) else None


@functools.lru_cache(maxsize=4096)
def _format_address(entry: str) -> str | None:
    parsed = _parse_address(entry)
    return email.utils.formataddr(parsed) if parsed else None


def invalid_entries(
    entries: list[str], bucket_id: str, render_uri: Callable[[str], str] = lambda uri: uri
) -> tuple[list[str], list[str]]:
    """Return ``(bad addresses, group URIs of another bucket)`` for a hook's entries.

    ``render_uri`` resolves placeholders that the bucket part of a group URI may hold.
    """
    bad: list[str] = []
    foreign: list[str] = []
    for entry in entries:
        if is_group_uri(entry):
            match = GROUP_URI.match(render_uri(entry))
            if not match:
                bad.append(entry)
            elif match.group("bucket_id") != bucket_id:
                foreign.append(entry)
        elif parse_address(entry) is None:
            bad.append(entry)
    return bad, foreign


def member_address(principal: object) -> str | None:
    """The address of a group member like ``ldap:alice@example.com``, or ``None``."""
    return _member_address(principal) if isinstance(principal, str) else None


@functools.lru_cache(maxsize=65536)
def _member_address(principal: str) -> str | None:
    address = principal.split(":", 1)[1] if ":" in principal else principal
    return ascii_address(address) if is_email(address) else None


def address_key(entry: str) -> str:
    """The address of ``entry`` (``Name <a@example.com>`` or ``a@example.com``) as opt-outs
    and the lists of who already has an email compare it: lower-cased."""
    return email.utils.parseaddr(entry)[1].lower()


def entry_mailbox(entry: str) -> str:
    """The mailbox (see ``mailbox``) of ``entry``: how an author is recognised in a list."""
    return mailbox(email.utils.parseaddr(entry)[1])


def mailbox(address: str) -> str:
    """``address`` as mail systems compare it: the domain's case doesn't matter, the local
    part's may (RFC 5321, 2.4), so it is kept as it is."""
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"


def verified_author(user_id: object, prefixes: tuple[str, ...]) -> str | None:
    """The mailbox (see ``mailbox``) that a writer's user id proves, or ``None``.

    Only user ids under one of ``prefixes``, which the operator declares as carrying
    verified addresses (``ldap:alice@example.com``), prove one: anyone may name a
    self-registered account, or a basic auth user, after someone else's address.
    """
    if not isinstance(user_id, str):
        return None
    for prefix in prefixes:
        if user_id.startswith(prefix):
            address = user_id[len(prefix) :]
            return mailbox(ascii_address(address) or "") if is_email(address) else None
    return None


def expand(
    entries: list[str],
    bucket_id: str,
    read_group: Callable[[str, str], dict[str, Any] | None],
    domains: tuple[str, ...] = (),
    left_out: list[str] | None = None,
) -> list[str]:
    """Turn rendered entries into unique ``To:`` addresses, in their order of appearance.

    ``read_group(bucket_id, group_id)`` returns the group's data or ``None``; only groups
    of ``bucket_id`` are read, and a missing group contributes nobody. With ``domains``,
    addresses at other domains are left out, and added to ``left_out`` when given.
    """
    addresses: list[str] = []
    seen: set[str] = set()

    def add(formatted: str, address: str) -> None:
        if domains and not at_domains(address, domains):
            if left_out is not None and address.lower() not in seen:
                left_out.append(address)
            seen.add(address.lower())
        elif address.lower() not in seen:
            seen.add(address.lower())
            addresses.append(formatted)

    for entry in entries:
        if is_group_uri(entry):
            match = GROUP_URI.match(entry)
            if not match or match.group("bucket_id") != bucket_id:
                continue
            group = read_group(bucket_id, match.group("group_id")) or {}
            for member in group.get("members", []):
                address = member_address(member)
                if address:
                    add(address, address)
        else:
            parsed = parse_address(entry)
            formatted = _format_address(entry)
            if parsed and formatted:
                add(formatted, parsed[1])
    return addresses


def without(addresses: list[str], taken: list[str]) -> list[str]:
    """``addresses`` minus those whose address is in ``taken`` (both as ``expand`` returns)."""
    if not addresses:  # The usual case, and parsing a large group's addresses costs.
        return []
    seen = {address_key(entry) for entry in taken}
    return [entry for entry in addresses if address_key(entry) not in seen]
