from __future__ import annotations

import pytest

from ocrstream.core.config import MIB, load_settings
from ocrstream.core.errors import ConfigError
from ocrstream.engines.base import DEFAULT_MAX_SIDE


def test_defaults_match_the_spec() -> None:
    settings = load_settings({})
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.max_file_size == 10 * MIB
    assert settings.max_files == 20
    assert settings.request_size_limit == 20 * 10 * MIB + MIB
    assert settings.max_parts == 100
    assert settings.max_image_pixels == 40_000_000
    assert settings.allowed_formats == {"JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "PDF"}
    assert (settings.max_pages, settings.render_dpi, settings.pdf_text) == (100, 200, "auto")
    assert settings.event_buffer == 1000
    assert settings.max_streams == 1000
    assert settings.keepalive_interval == 15
    assert settings.stalled_reader_timeout == 60
    assert settings.upload_timeout == 30
    assert settings.upload_deadline == 300
    assert settings.ocr_engine == "rapidocr"
    assert settings.ocr_timeout == 120
    assert settings.ocr_max_side == DEFAULT_MAX_SIDE == 2000
    assert settings.result_ttl == 600
    assert settings.api_token is None
    assert settings.admin_token is None


def test_environment_values_are_parsed() -> None:
    settings = load_settings(
        {
            "OCRSTREAM_MAX_FILES": "3",
            "OCRSTREAM_MAX_FILE_SIZE": "1000",
            "OCRSTREAM_ALLOWED_FORMATS": "png, jpeg",
            "OCRSTREAM_KEEPALIVE_INTERVAL": "0.5",
            "OCRSTREAM_API_TOKEN": "s3cret",
            "UNRELATED": "x",
        }
    )
    assert settings.max_files == 3
    assert settings.request_size_limit == 3 * 1000 + MIB
    assert settings.allowed_formats == {"PNG", "JPEG"}
    assert settings.keepalive_interval == 0.5
    assert settings.api_token == "s3cret"


def test_explicit_request_size_wins() -> None:
    assert load_settings({"OCRSTREAM_MAX_REQUEST_SIZE": "5000"}).request_size_limit == 5000


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OCRSTREAM_PORT", "not-a-port"),
        ("OCRSTREAM_PORT", "70000"),
        ("OCRSTREAM_MAX_FILES", "0"),
        ("OCRSTREAM_ALLOWED_FORMATS", "PNG,PSD"),
        ("OCRSTREAM_OCR_ENGINE", "magic"),
        ("OCRSTREAM_UPLOAD_TIMEOUT", "-1"),
        ("OCRSTREAM_OCR_MAX_SIDE", "100"),
    ],
)
def test_a_bad_value_names_its_variable_in_one_line(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({variable: value})
    message = caught.value.message
    assert variable in message
    assert "\n" not in message


def test_overrides_win_over_the_environment() -> None:
    settings = load_settings({"OCRSTREAM_PORT": "9000"}, port=9100, host=None)
    assert settings.port == 9100
    assert settings.host == "127.0.0.1"


def test_redis_settings_and_their_defaults() -> None:
    settings = load_settings({})
    assert settings.redis_url is None
    assert (settings.ocr_lease, settings.ocr_attempts, settings.instance_lease) == (30, 2, 10)
    remote = load_settings({"OCRSTREAM_REDIS_URL": "rediss://:hunter2@cache:6380/1"})
    assert remote.redis_url == "rediss://:hunter2@cache:6380/1"
    assert "hunter2" not in repr(remote)
    assert load_settings({"OCRSTREAM_REDIS_URL": "redis://h", "OCRSTREAM_OCR_WORKERS": "0"})


@pytest.mark.parametrize(
    "url", ["http://:hunter2@cache", "redis://:hunter2@/0", "redis://:hunter2@h/db"]
)
def test_a_bad_redis_url_is_named_without_its_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"OCRSTREAM_REDIS_URL": url})
    assert "OCRSTREAM_REDIS_URL" in caught.value.message
    assert "hunter2" not in caught.value.message
    assert "***" in caught.value.message


def test_no_workers_without_redis_stops_start_up() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"OCRSTREAM_OCR_WORKERS": "0"})
    assert "REDIS_URL" in caught.value.message
