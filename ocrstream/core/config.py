"""Settings: every limit of the service, read once from ``OCRSTREAM_*`` variables.

Each field names its unit in its description, and the reason it exists. Call sites
receive limits as keyword-only arguments taken from one ``Settings`` value, never
from the environment directly. The defaults are the ones in SPEC.md.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ocrstream.core.cors import normalise_origin
from ocrstream.core.errors import ConfigError
from ocrstream.core.redis_url import check_redis_url

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["ENV_PREFIX", "KNOWN_FORMATS", "MIB", "Settings", "load_settings"]

ENV_PREFIX = "OCRSTREAM_"
MIB = 1024 * 1024

#: Formats Pillow can identify from bytes that the service may be told to accept.
KNOWN_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "PDF"})


class Settings(BaseSettings):  # type: ignore[explicit-any]  # pydantic's base is typed with Any
    """The service's configuration; see the table in README.md and SPEC.md."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="ignore", case_sensitive=False
    )

    host: str = Field("127.0.0.1", description="address `ocrstream serve` listens on")
    port: int = Field(8000, ge=0, le=65535, description="TCP port `ocrstream serve` listens on")
    max_file_size: int = Field(10 * MIB, ge=1, description="bytes per file")
    max_files: int = Field(20, ge=1, description="files per request")
    max_request_size: int | None = Field(
        None, ge=1, description="bytes of the whole body; default MAX_FILES x MAX_FILE_SIZE + 1 MiB"
    )
    max_parts: int = Field(100, ge=1, description="multipart parts of any kind per request")
    max_image_pixels: int = Field(
        40_000_000, ge=1, description="width x height; above it an image is refused unopened"
    )
    allowed_formats: Annotated[frozenset[str], NoDecode] = Field(
        frozenset({"JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "PDF"}),
        description="formats accepted, as Pillow names them, plus PDF",
    )
    max_pages: int = Field(
        100, ge=1, description="pages per file (PDF pages, TIFF frames); more: too_many_pages"
    )
    render_dpi: int = Field(
        200, ge=72, le=1200, description="dots per inch PDF pages are rasterised at for OCR"
    )
    pdf_text: Literal["auto", "ocr"] = Field(
        "auto",
        description=(
            "`auto`: a PDF page whose text layer holds text is read from it, others are"
            " recognised; `ocr`: every page is recognised"
        ),
    )
    event_buffer: int = Field(1000, ge=1, description="events the shared broadcast ring holds")
    max_streams: int = Field(1000, ge=1, description="concurrent SSE responses")
    keepalive_interval: float = Field(
        15.0, gt=0, description="seconds of silence before a keep-alive comment"
    )
    stalled_reader_timeout: float = Field(
        60.0, gt=0, description="seconds a client may leave sent bytes unread"
    )
    upload_timeout: float = Field(30.0, gt=0, description="seconds without body bytes")
    upload_deadline: float = Field(300.0, gt=0, description="seconds for the whole body")
    ocr_engine: Literal["rapidocr", "tesseract", "none", "fake"] = Field(
        "rapidocr",
        description="OCR engine; `fake` is the deterministic test engine shipped in the package",
    )
    ocr_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=0,
        description="OCR worker processes (0 with REDIS_URL set: it recognises nothing itself)",
    )
    ocr_timeout: float = Field(120.0, gt=0, description="seconds one image may spend in OCR")
    ocr_max_side: int = Field(
        2000,
        ge=256,
        le=20000,
        description=(
            "pixels: a page with a longer side is cut to its printed area, and RapidOCR's"
            " detector works on it scaled to this long side while lines are read at full"
            " resolution (small print on big scans stays legible; detector time grows with"
            " the square of this)"
        ),
    )
    ocr_max_tasks_per_worker: int = Field(
        500, ge=1, description="images a worker recognises before it is replaced (engine leaks)"
    )
    ocr_worker_max_rss: int = Field(
        2048 * MIB, ge=MIB, description="bytes of worker memory past which it is replaced"
    )
    result_ttl: float = Field(600.0, gt=0, description="seconds a finished job stays readable")
    # repr=False: the URL may hold a password, which is never logged nor shown.
    redis_url: str | None = Field(
        None,
        repr=False,
        description="redis:// or rediss:// URL of the store shared by every instance and worker",
    )
    ocr_lease: float = Field(
        30.0, gt=0, description="seconds a worker holds a page without renewing its lease"
    )
    ocr_attempts: int = Field(2, ge=1, description="tries a page gets in all")
    instance_lease: float = Field(
        10.0, gt=0, description="seconds an instance's lease lasts without renewal"
    )
    api_token: str | None = Field(None, min_length=1, description="bearer token for /api/")
    admin_token: str | None = Field(None, min_length=1, description="bearer token for /api/events")
    cors_origins: Annotated[frozenset[str], NoDecode] = Field(
        frozenset(),
        description="origins whose web apps may call the API (`*` for any); empty: same origin",
    )
    validation_threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="threads decoding images at once, across all requests",
    )
    document_timeout: float = Field(
        30.0,
        gt=0,
        description=(
            "seconds a worker process may spend opening a PDF or building a searchable PDF"
            " before it is killed"
        ),
    )
    pipeline_buffer: int = Field(
        64, ge=1, description="events in flight between a job's tasks and its sequencer"
    )
    shutdown_grace: float = Field(
        10.0, ge=0, description="seconds running jobs may finish after SIGTERM/SIGINT"
    )

    @field_validator("allowed_formats", mode="before")
    @classmethod
    def _split_formats(cls, value: object) -> object:
        if isinstance(value, str):
            value = [item.strip().upper() for item in value.split(",") if item.strip()]
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _valid_origins(cls, value: frozenset[str]) -> frozenset[str]:
        origins = set()
        for item in value:
            if item == "*":
                origins.add(item)
                continue
            origin = normalise_origin(item)
            if origin is None:
                raise ValueError(
                    f"{item!r} is not an origin; write scheme://host[:port], or * for any"
                )
            origins.add(origin)
        return frozenset(origins)

    @field_validator("allowed_formats")
    @classmethod
    def _known_formats(cls, value: frozenset[str]) -> frozenset[str]:
        normalised = frozenset(item.upper() for item in value)
        unknown = sorted(normalised - KNOWN_FORMATS)
        if unknown:
            raise ValueError(
                f"unknown format(s) {', '.join(unknown)}; "
                f"choose from {', '.join(sorted(KNOWN_FORMATS))}"
            )
        if not normalised:
            raise ValueError("at least one format is needed")
        return normalised

    @field_validator("redis_url")
    @classmethod
    def _usable_redis_url(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else check_redis_url(value.strip())

    @model_validator(mode="after")
    def _check_deadlines(self) -> Settings:
        if self.upload_deadline < self.upload_timeout:
            raise ValueError("UPLOAD_DEADLINE must be at least UPLOAD_TIMEOUT")
        return self

    @model_validator(mode="after")
    def _check_workers(self) -> Settings:
        if self.ocr_workers == 0 and self.redis_url is None:
            raise ValueError(
                "OCR_WORKERS=0 needs REDIS_URL (workers elsewhere); alone, nothing would"
                " recognise anything"
            )
        return self

    @property
    def request_size_limit(self) -> int:
        """MAX_REQUEST_SIZE, or its default MAX_FILES x MAX_FILE_SIZE + 1 MiB, in bytes."""
        if self.max_request_size is not None:
            return self.max_request_size
        return self.max_files * self.max_file_size + MIB


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read the settings once, from ``environ`` (default: the process environment).

    Args:
        environ: variables to read instead of ``os.environ``; only ``OCRSTREAM_*`` ones count.
        **overrides: field values that win over the environment (used by the CLI and tests).

    Returns:
        The validated settings.

    Raises:
        ConfigError: one line naming the first invalid variable and what is wrong with it.
    """
    source = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for name, raw in source.items():
        if name.upper().startswith(ENV_PREFIX):
            field = name[len(ENV_PREFIX) :].lower()
            if field in Settings.model_fields:
                values[field] = raw
    values.update({key: value for key, value in overrides.items() if value is not None})
    try:
        # Passing values explicitly (rather than letting pydantic-settings read os.environ)
        # keeps ``environ`` authoritative, so tests never see the developer's shell.
        return Settings.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        location = first["loc"]
        variable = ENV_PREFIX + str(location[0]).upper() if location else "OCRSTREAM_*"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"invalid {variable}: {message}") from None
