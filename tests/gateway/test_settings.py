"""Weak API secrets are refused at configuration time, in every mode but the demo."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.settings import Settings, load_settings

MIN_SECRET_BYTES = 32  # what the README and the error message promise
LONG_ENOUGH = "k" * MIN_SECRET_BYTES
SHORT = "short-secret-Q7"


@pytest.mark.parametrize("mode", ["production", "development"])
@pytest.mark.parametrize("secret", ["x", SHORT, "k" * (MIN_SECRET_BYTES - 1), "密" * 10])
def test_a_short_api_secret_is_refused(mode: str, secret: str) -> None:
    with pytest.raises(ValidationError, match=r"api\.secret_key") as refused:
        Settings(mode=mode, api={"secret_key": secret})
    assert f"{MIN_SECRET_BYTES} bytes or more" in str(refused.value)


@pytest.mark.parametrize("mode", ["production", "development"])
@pytest.mark.parametrize("token", ["x", SHORT])
def test_a_short_service_token_is_refused_by_name(mode: str, token: str) -> None:
    with pytest.raises(ValidationError, match=r"api\.service_tokens\.erp \(") as refused:
        Settings(
            mode=mode,
            api={
                "secret_key": LONG_ENOUGH,
                "service_tokens": {"ledger": LONG_ENOUGH, "erp": token},
            },
        )
    assert "api.service_tokens.ledger" not in str(refused.value)


def test_thirty_two_bytes_are_enough() -> None:
    # Bytes, not characters: eleven 3-byte characters are 33 bytes.
    for secret in (LONG_ENOUGH, "密" * 11):
        settings = Settings(
            mode="production", api={"secret_key": secret, "service_tokens": {"erp": secret}}
        )
        assert settings.api.secret_key.get_secret_value() == secret


def test_a_short_secret_from_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(f"mode: production\napi:\n  secret_key: {LONG_ENOUGH}\n")
    monkeypatch.setenv("SAFETY_API__SECRET_KEY", SHORT)
    with pytest.raises(ValidationError, match=r"api\.secret_key"):
        load_settings(config)


def test_development_still_replaces_the_default_with_a_random_key() -> None:
    first, second = (
        Settings(mode="development").api.secret_key.get_secret_value() for _ in range(2)
    )
    assert first != second
    assert len(first.encode()) >= MIN_SECRET_BYTES


def test_the_demo_keeps_what_it_is_given() -> None:
    settings = Settings(mode="demo", api={"secret_key": "x", "service_tokens": {"erp": "y"}})
    assert settings.api.secret_key.get_secret_value() == "x"


def test_the_refusal_shows_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFETY_MQTT__PASSWORD", "mqtt-password-Z9")
    with pytest.raises(ValidationError) as refused:
        Settings(mode="production", api={"secret_key": SHORT, "service_tokens": {"erp": "tok-W4"}})
    text = str(refused.value)
    for secret in (SHORT, "tok-W4", "mqtt-password-Z9"):
        assert secret not in text
