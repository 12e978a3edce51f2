"""Tokens: what may be configured, who a secret is, and who a caller is (author and on behalf of)."""

from __future__ import annotations

import pytest

from switchman.api.auth import MAX_ON_BEHALF_OF, Caller, Tokens, authorize
from switchman.api.errors import ApiError
from switchman.errors import ConfigError

TOKENS = Tokens(admin={"ci": "s3cret"}, read={"viewer": "r3ad"})


@pytest.mark.parametrize(
    ("admin", "read", "where", "says"),
    [
        ("ops=", "", "--admin-tokens", "token 'ops' has an empty secret"),
        ("ops=  ", "", "--admin-tokens", "token 'ops' has an empty secret"),
        ("a=Zq9x,ops=\u00a0", "", "--admin-tokens", "token 'ops' has an empty secret"),
        ("ops=Zq9\u00a0x", "", "--admin-tokens", "the secret of the admin token 'ops' has spaces"),
        ("ops=Zq9é", "", "--admin-tokens", "not printable ASCII"),
        ("ops=Zq9a,ops=Zq9b", "", "--admin-tokens", "token 'ops' is given twice"),
        ("", "v=Zq9a,v=Zq9b", "--read-tokens", "token 'v' is given twice"),
        ("ops=Zq9a", "ops=Zq9b", "--read-tokens", "token 'ops' is also an admin token"),
        ("ops=Zq9", "viewer=Zq9", "--read-tokens", "tokens 'ops' and 'viewer' have the same secret"),
        ("=Zq9", "", "--admin-tokens", "token 1 has no name"),
        ("o p=Zq9", "", "--admin-tokens", "'o p' is not a token name"),
    ],
)
def test_tokens_that_cannot_be_used_safely_are_refused_naming_flag_and_token(
    admin: str, read: str, where: str, says: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        Tokens.from_flags(admin, read)
    assert refused.value.path == where
    assert says in refused.value.reason
    assert "Zq9" not in str(refused.value)  # never the secret


def test_tokens_made_in_code_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="admin tokens: the admin token 'ops' has an empty secret"):
        Tokens(admin={"ops": " "})
    with pytest.raises(ConfigError, match="read tokens"):
        Tokens(read={"viewer": ""})


def test_parse_names_bare_secrets_by_place() -> None:
    assert Tokens.parse("s3cret, ci=abc ,") == {"token1": "s3cret", "ci": "abc"}
    assert Tokens.from_flags("ci=s3cret", "viewer=r3ad") == TOKENS


@pytest.mark.parametrize("presented", ["", " ", "\u00a0", "\t", "\u00a0\u00a0", "s3cretx", "S3CRET"])
def test_a_blank_or_wrong_secret_is_nobody(presented: str) -> None:
    assert TOKENS.who(presented) is None


def test_who_and_authorize() -> None:
    assert TOKENS.who("s3cret") == ("ci", "admin")
    assert TOKENS.who(" r3ad ") == ("viewer", "read")
    assert authorize(TOKENS, "Bearer s3cret", "", change=True) == Caller("ci", None)
    assert authorize(TOKENS, "bearer s3cret", " alice ", change=True) == Caller("ci", "alice")
    assert authorize(TOKENS, "Bearer r3ad", "alice", change=False) == Caller("viewer", "alice")
    for header in ("Bearer \u00a0", "Bearer  ", "Bearer", "", "Basic s3cret", "s3cret"):
        with pytest.raises(ApiError) as refused:
            authorize(TOKENS, header, "", change=False)
        assert (refused.value.status, refused.value.code) == (401, "unauthorized"), header
    with pytest.raises(ApiError) as refused:
        authorize(TOKENS, "Bearer r3ad", "", change=True)
    assert (refused.value.status, refused.value.code) == (403, "forbidden")


def test_without_tokens_the_author_is_what_the_caller_says() -> None:
    assert authorize(Tokens(), "", "", change=True) == Caller("anonymous", None)
    assert authorize(Tokens(), "Bearer whatever", "alice", change=True) == Caller("alice", None)


@pytest.mark.parametrize("said", ["a" * (MAX_ON_BEHALF_OF + 1), "alice\nbob", "\x1b[31mred"])
def test_an_author_that_cannot_go_in_the_history_is_refused_on_a_change(said: str) -> None:
    with pytest.raises(ApiError) as refused:
        authorize(TOKENS, "Bearer s3cret", said, change=True)
    assert (refused.value.status, "X-Switchman-Author" in str(refused.value)) == (400, True)
    assert authorize(TOKENS, "Bearer s3cret", said, change=False).author == "ci"  # a read does not keep it
