"""Client identities from certificates, and which node groups they may claim."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchman.cli.tls_flags import node_identities
from switchman.errors import ConfigError
from switchman.xds.server.peer import (
    ANONYMOUS,
    NodeIdentities,
    Peer,
    identity_of,
    matches_any,
    parse_identity_patterns,
    parse_node_identities,
    peer_of_auth_context,
)


def test_the_identity_is_the_first_spiffe_uri_else_the_first_dns_name() -> None:
    sans = (("DNS", "a.lab"), ("URI", "https://x/"), ("URI", "spiffe://lab/front"), ("URI", "spiffe://lab/b"))
    assert identity_of({"subjectAltName": sans}) == "spiffe://lab/front"
    assert identity_of({"subjectAltName": (("URI", "https://x/"), ("DNS", "a.lab"))}) == "a.lab"
    assert identity_of({"subjectAltName": (("IP Address", "127.0.0.1"),)}) is None
    assert identity_of({}) is None and identity_of(None) is None


def test_grpc_auth_contexts_give_the_same_identity() -> None:
    """What grpc.aio's ServicerContext.auth_context() holds for a verified client certificate (seen with grpcio
    1.85), and for a plaintext call."""
    verified = {"transport_security_type": [b"ssl"], "x509_pem_cert": [b"-----BEGIN CERTIFICATE-----..."],
                "peer_uri": [b"https://x/", b"spiffe://lab/front"], "peer_dns": [b"a.lab", b"b.lab"]}
    assert peer_of_auth_context(verified) == Peer(
        "spiffe://lab/front", certified=True, names=("spiffe://lab/front", "a.lab", "b.lab")
    )
    del verified["peer_uri"]
    assert peer_of_auth_context(verified) == Peer("a.lab", certified=True, names=("a.lab", "b.lab"))
    del verified["peer_dns"]
    assert peer_of_auth_context(verified) == Peer(None, certified=True)
    assert peer_of_auth_context({"transport_security_type": [b"insecure"]}) is ANONYMOUS
    assert peer_of_auth_context({"transport_security_type": [b"ssl"], "peer_dns": [b"a.lab"]}) is ANONYMOUS


def test_identity_patterns_for_readers() -> None:
    patterns = parse_identity_patterns(" spiffe://lab/ops/*, ci.lab ,", "--read-identities")
    assert patterns == ("spiffe://lab/ops/*", "ci.lab")
    assert matches_any(patterns, ["spiffe://lab/ops/alice"]) and matches_any(patterns, ["ci.lab"])
    assert not matches_any(patterns, ["ci.lab.evil"]) and not matches_any(patterns, [])
    with pytest.raises(ConfigError, match="--read-identities: 'a=b' is not an identity pattern"):
        parse_identity_patterns("a=b", "--read-identities")


def test_patterns_are_exact_or_a_trailing_prefix() -> None:
    rules = NodeIdentities(parse_node_identities("spiffe://lab/front=front,spiffe://lab/pod-*=checkout-*|cart"))
    assert rules.allows(["spiffe://lab/front"], "front")
    assert not rules.allows(["spiffe://lab/front"], "front-2")
    assert not rules.allows(["spiffe://lab/frontier"], "front")
    assert rules.allows(["spiffe://lab/pod-7"], "checkout-v2") and rules.allows(["spiffe://lab/pod-7"], "cart")
    assert not rules.allows(["spiffe://lab/pod-7"], "front")
    assert not rules.allows([], "front")
    assert NodeIdentities({}).allows([], "anything")


def test_the_rules_choose_which_name_of_a_certificate_counts() -> None:
    """A certificate with a SPIFFE URI and DNS names: rules written for DNS names authorize it by those."""
    peer = Peer.of_certificate({"subjectAltName": (("URI", "spiffe://mesh/ns/shop/sa/front"), ("DNS", "front.shop"))})
    assert peer.identity == "spiffe://mesh/ns/shop/sa/front"  # what messages call it
    assert NodeIdentities(parse_node_identities("front.shop=front")).allows(peer.names, "front")
    assert NodeIdentities(parse_node_identities("spiffe://mesh/ns/shop/*=front")).allows(peer.names, "front")
    assert not NodeIdentities(parse_node_identities("cart.shop=front")).allows(peer.names, "front")
    assert matches_any(("front.*",), peer.names) and not matches_any(("spiffe://mesh/ns/ops/*",), peer.names)


@pytest.mark.parametrize("text", ["front", "=front", "spiffe://x=", "spiffe://*/x=front", "a=b*c"])
def test_malformed_rules_are_refused_naming_the_flag(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--node-identities: "):
        parse_node_identities(text)


def test_rules_from_a_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "ids.yaml"
    path.write_text("spiffe://lab/front: front\nspiffe://lab/pod-*: [checkout-*, cart]\n")
    assert node_identities(str(path)) == {
        "spiffe://lab/front": ("front",), "spiffe://lab/pod-*": ("checkout-*", "cart"),
    }
    path.write_text("- not a mapping\n")
    with pytest.raises(ConfigError, match="a mapping"):
        node_identities(str(path))
    with pytest.raises(ConfigError, match="cannot read"):
        node_identities(str(tmp_path / "missing.yaml"))
