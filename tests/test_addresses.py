"""addresses.py alone: address forms, group URIs and group expansion."""

import pytest

from kinto_emailer import addresses


@pytest.mark.parametrize(
    "entry, parsed",
    [
        ("alice@example.com", ("", "alice@example.com")),
        ("Alice <alice@example.com>", ("Alice", "alice@example.com")),
        ("<alice@example.com>", ("", "alice@example.com")),
        ('"Alice Liddell" <alice@example.com>', ("Alice Liddell", "alice@example.com")),
        ("  alice@example.com  ", ("", "alice@example.com")),
        ("alice@localhost", ("", "alice@localhost")),
        ("alice+kinto@mail.example.museum", ("", "alice+kinto@mail.example.museum")),
        ("Zoë <zoe@example.org>", ("Zoë", "zoe@example.org")),
    ],
)
def test_parse_address_accepts_the_forms_deployments_store(entry, parsed):
    assert addresses.parse_address(entry) == parsed


@pytest.mark.parametrize(
    "entry",
    [
        "alice",
        "alice@",
        "@example.com",
        "alice smith@example.com",
        "Alice <alice>",
        "Alice <alice@example.com",
        "alice@example.com\nBcc: eve@example.com",
        "Alice\r\n <alice@example.com>",
        "alice@-example.com",
        "",
        None,
        42,
    ],
)
def test_parse_address_refuses_what_is_not_an_address(entry):
    assert addresses.parse_address(entry) is None


def test_format_address_writes_a_header_value():
    assert addresses.format_address("Alice <alice@example.com>") == "Alice <alice@example.com>"
    assert addresses.format_address("<alice@example.com>") == "alice@example.com"


def test_format_address_encodes_a_non_ascii_display_name():
    formatted = addresses.format_address("Zoë <zoe@example.org>")
    assert formatted.endswith(" <zoe@example.org>")
    assert formatted.isascii()


def test_format_address_writes_an_international_domain_in_ascii():
    assert addresses.format_address("alice@exämple.org") == "alice@xn--exmple-cua.org"


def test_an_address_whose_local_part_is_not_ascii_is_refused():
    # smtplib can't send it without SMTPUTF8: refusing it on save beats failing on send.
    assert addresses.parse_address("zoë@example.org") is None


def test_format_address_of_an_invalid_entry_is_none():
    assert addresses.format_address("not an address") is None


def test_is_group_uri_recognises_bucket_paths():
    assert addresses.is_group_uri("/buckets/b/groups/g")
    assert not addresses.is_group_uri("alice@example.com")


def test_invalid_entries_names_each_bad_address_and_malformed_group():
    bad, foreign = addresses.invalid_entries(
        ["alice@example.com", "bob", "/buckets/b/groups/", "carol@", "/buckets/b/groups/g"], "b"
    )
    assert bad == ["bob", "/buckets/b/groups/", "carol@"]
    assert foreign == []


def test_invalid_entries_lists_groups_of_another_bucket_apart():
    bad, foreign = addresses.invalid_entries(["/buckets/other/groups/g"], "b")
    assert bad == []
    assert foreign == ["/buckets/other/groups/g"]


def test_invalid_entries_resolves_the_bucket_placeholder_before_comparing():
    def render(uri):
        return uri.replace("{bucket_id}", "b")

    entries = ["/buckets/{bucket_id}/groups/{collection_id}-reviewers"]
    assert addresses.invalid_entries(entries, "b", render) == ([], [])


@pytest.mark.parametrize(
    "principal, address",
    [
        ("ldap:alice@example.com", "alice@example.com"),
        ("email:bob@example.com", "bob@example.com"),
        ("carol@example.com", "carol@example.com"),
        ("ldap:dan@exämple.org", "dan@xn--exmple-cua.org"),
        ("ldap:zoë@example.org", None),
        ("account:dave", None),
        ("system.Authenticated", None),
        ("basicauth:3a0c56d6", None),
        (None, None),
    ],
)
def test_member_address_strips_the_prefix_up_to_the_first_colon(principal, address):
    assert addresses.member_address(principal) == address


def groups(**members):
    read = []

    def read_group(bucket_id, group_id):
        read.append((bucket_id, group_id))
        if group_id in members:
            return {"id": group_id, "members": members[group_id]}
        return None

    return read_group, read


def test_expand_mixes_addresses_and_group_members_in_order():
    read_group, read = groups(reviewers=["ldap:bob@example.com", "account:eve", "carol@ex.org"])
    entries = ["Alice <alice@example.com>", "/buckets/b/groups/reviewers"]
    assert addresses.expand(entries, "b", read_group) == [
        "Alice <alice@example.com>",
        "bob@example.com",
        "carol@ex.org",
    ]
    assert read == [("b", "reviewers")]


def test_expand_removes_duplicates_whatever_their_case():
    read_group, _ = groups(g=["ldap:ALICE@example.com"])
    entries = ["alice@example.com", "/buckets/b/groups/g", "Alice <alice@example.com>"]
    assert addresses.expand(entries, "b", read_group) == ["alice@example.com"]


def test_expand_a_missing_group_contributes_nobody():
    read_group, read = groups()
    assert addresses.expand(["/buckets/b/groups/nobody"], "b", read_group) == []
    assert read == [("b", "nobody")]


def test_expand_never_reads_a_group_of_another_bucket():
    read_group, read = groups(g=["bob@example.com"])
    assert addresses.expand(["/buckets/other/groups/g"], "b", read_group) == []
    assert read == []


def test_expand_skips_invalid_addresses():
    read_group, _ = groups()
    assert addresses.expand(["nobody", "bob@example.com"], "b", read_group) == ["bob@example.com"]


@pytest.mark.parametrize(
    "address, allowed",
    [
        ("a@example.com", True),
        ("a@EXAMPLE.com", True),
        ("a@lists.example.com", True),
        ("a@notexample.com", False),
        ("a@example.com.evil.org", False),
        ("a@example.org", True),
        ("a@eu.example.org", True),
        ("a@localhost", False),
    ],
)
def test_at_domains_accepts_the_domains_and_below_them_only(address, allowed):
    assert addresses.at_domains(address, ("example.com", "example.org")) is allowed


def test_expand_leaves_out_addresses_at_other_domains_and_collects_them():
    groups = {"team": {"members": ["ldap:a@example.com", "ldap:e@evil.example", "e@evil.example"]}}
    left_out = []
    found = addresses.expand(
        ["/buckets/b/groups/team", "b@example.com", "x@other.net"],
        "b",
        lambda bucket_id, group_id: groups.get(group_id),
        ("example.com",),
        left_out,
    )
    assert found == ["a@example.com", "b@example.com"]
    # Each left-out address counted once.
    assert left_out == ["e@evil.example", "x@other.net"]
