"""One host normaliser (federation.policy.host_of) for actor ids, key ids, object ids
and the instance policy: an internationalised domain is one host whichever way it is
written."""

from __future__ import annotations

from federation import actors, policy
from federation.handlers import base


def test_ids_keys_and_policy_share_one_normaliser() -> None:
    assert vars(actors)["host_of"] is policy.host_of is vars(base)["host_of"]


def test_an_idn_host_is_one_host_whichever_way_it_is_written() -> None:
    assert policy.host_of("https://Bücher.Example./users/a") == "xn--bcher-kva.example"
    assert base.same_host("https://bücher.example/notes/1", "https://XN--BCHER-KVA.example:443/users/a")
    assert policy.host_of("https://a.example:8443/x") == "a.example:8443"


def test_what_is_not_an_http_url_has_no_host() -> None:
    for uri in (None, "", "mailto:a@example.org", "https://", "https://exa mple.org/"):
        assert policy.host_of(uri) == ""
