"""Start-up checks of the notify settings: every paged severity has a provider template."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.settings import Settings

ALIYUN = {"access_key_id": "LTAI", "access_key_secret": "s", "sign_name": "阳光社区"}


def test_a_provider_without_a_template_for_every_severity_refuses_to_start() -> None:
    with pytest.raises(ValidationError) as err:
        Settings(mode="demo", notify={"aliyun_sms": {**ALIYUN, "templates": {"critical": "SMS_1"}}})
    text = str(err.value)
    assert "notify.aliyun_sms" in text
    assert "no template for severity major, minor" in text


def test_voice_and_tencent_are_checked_too_and_one_sms_provider_only() -> None:
    with pytest.raises(ValidationError, match="no template for severity critical"):
        Settings(
            mode="demo",
            notify={"aliyun_voice": {"access_key_id": "LTAI", "access_key_secret": "s", "called_show_number": "0571", "templates": {"major": "T", "minor": "T"}}},
        )
    full = {"critical": "1", "major": "2", "minor": "3"}
    tencent = {"secret_id": "AKID", "secret_key": "k", "sdk_app_id": "1400", "sign_name": "阳光社区", "templates": full}
    with pytest.raises(ValidationError, match="one provider only"):
        Settings(mode="demo", notify={"tencent_sms": tencent, "aliyun_sms": {**ALIYUN, "templates": full}})
    ok = Settings(mode="demo", notify={"tencent_sms": tencent})
    assert ok.notify.tencent_sms is not None


def test_a_short_receipt_secret_is_refused() -> None:
    key = "k" * 40
    with pytest.raises(ValidationError, match=r"notify.receipt_secret \(5 bytes\)"):
        Settings(mode="development", api={"secret_key": key}, notify={"receipt_secret": "short"})
    ok = Settings(mode="development", api={"secret_key": key}, notify={"receipt_secret": "r" * 32})
    assert ok.notify.receipt_secret is not None
