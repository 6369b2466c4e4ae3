"""The API's tokens file: clear errors, and only token digests kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from api.auth import Principal, TokensFileError, digest, load_tokens, parse_tokens

TOKEN = "test-token-0123456789"


def test_plain_and_hashed_tokens_map_to_their_scopes() -> None:
    table = parse_tokens(
        {
            "tokens": [
                {"name": "oms", "token": TOKEN, "scopes": ["read", "promise"]},
                {"name": "dash", "sha256": digest("other-token-0123456789"), "scopes": ["read"]},
            ]
        }
    )
    assert table[digest(TOKEN)] == Principal("oms", frozenset({"read", "promise"}))
    assert table[digest("other-token-0123456789")].scopes == {"read"}
    assert TOKEN not in table


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], 'must be an object with a "tokens" list'),
        ({"tokens": [{"token": TOKEN, "scopes": ["read"]}]}, r"tokens\[0\].name"),
        ({"tokens": [{"name": "a", "scopes": ["read"]}]}, "exactly one of token and sha256"),
        ({"tokens": [{"name": "a", "token": "short", "scopes": ["read"]}]}, "16 characters"),
        ({"tokens": [{"name": "a", "sha256": "abc", "scopes": ["read"]}]}, "64 hex digits"),
        ({"tokens": [{"name": "a", "token": TOKEN, "scopes": ["admin"]}]}, "scopes must be"),
        (
            {
                "tokens": [
                    {"name": "a", "token": TOKEN, "scopes": ["read"]},
                    {"name": "b", "sha256": digest(TOKEN), "scopes": ["read"]},
                ]
            },
            r"tokens\[1\] repeats the token of 'a'",
        ),
    ],
)
def test_a_bad_tokens_file_is_refused_with_the_entry_named(document: Any, message: str) -> None:
    with pytest.raises(TokensFileError, match=message):
        parse_tokens(document)


def test_a_missing_or_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TokensFileError, match="tokens file not found"):
        load_tokens(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(TokensFileError, match="not valid JSON"):
        load_tokens(bad)
