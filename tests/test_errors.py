from __future__ import annotations

import pytest

from ocrstream.core import errors


@pytest.mark.parametrize(
    "abstract", [errors.OCRStreamError, errors.RequestRefused, errors.UploadFailed]
)
def test_abstract_bases_refuse_instantiation(abstract: type[errors.OCRStreamError]) -> None:
    with pytest.raises(TypeError):
        abstract("boom")


@pytest.mark.parametrize(
    ("cls", "status", "code"),
    [
        (errors.Unauthorized, 401, "unauthorized"),
        (errors.NotFound, 404, "not_found"),
        (errors.ContentTooLarge, 413, "content_too_large"),
        (errors.UnsupportedMediaType, 415, "unsupported_media_type"),
        (errors.ServiceBusy, 503, "service_busy"),
        (errors.MalformedRequest, 400, "malformed_request"),
        (errors.RequestTooLarge, 413, "request_too_large"),
        (errors.TooManyParts, 413, "too_many_parts"),
        (errors.UploadTimeout, 408, "upload_timeout"),
        (errors.NoFiles, 422, "no_files"),
    ],
)
def test_each_error_has_a_status_hint_and_code(
    cls: type[errors.OCRStreamError], status: int, code: str
) -> None:
    error = cls("what went wrong")
    assert error.status_hint == status
    assert error.code == code
    assert error.message == "what went wrong"
    assert isinstance(error, errors.OCRStreamError)


def test_processing_codes_are_spec_codes() -> None:
    for cls in errors.UploadFailed.__subclasses__():
        assert cls.code in errors.PROCESSING_ERROR_CODES


def test_file_errors_check_their_code() -> None:
    assert errors.InvalidImage("empty_file", "empty").code == "empty_file"
    assert errors.OCRError("ocr_timeout", "slow").code == "ocr_timeout"
    with pytest.raises(ValueError, match="unknown validation error code"):
        errors.InvalidImage("nope", "x")
    with pytest.raises(ValueError, match="unknown OCR error code"):
        errors.OCRError("empty_file", "x")


def test_no_name_is_both_an_exception_and_an_event() -> None:
    from ocrstream.core import events

    assert set(errors.__all__) & set(events.__all__) == set()


def test_error_info_is_the_one_translation() -> None:
    from ocrstream.core.events import ErrorInfo, error_info

    assert error_info(errors.InvalidImage("empty_file", "empty")) == ErrorInfo(
        code="empty_file", message="empty"
    )
    assert error_info(errors.UploadTimeout("no bytes for 30 s")) == ErrorInfo(
        code="upload_timeout", message="no bytes for 30 s"
    )


def test_engine_unavailable_is_in_the_tree() -> None:
    from ocrstream.engines.base import EngineUnavailable

    assert EngineUnavailable is errors.EngineUnavailable
    assert issubclass(EngineUnavailable, errors.ConfigError)


@pytest.mark.parametrize(
    "error",
    [
        errors.InvalidImage("encrypted_document", "the PDF is encrypted and needs a password"),
        errors.InvalidImage("too_many_pages", "the PDF has 101 pages, over MAX_PAGES (100)"),
        errors.OCRError("ocr_failed", "the engine raised"),
    ],
)
def test_file_errors_come_back_from_worker_processes_intact(
    error: errors.InvalidImage | errors.OCRError,
) -> None:
    # trio-parallel pickles what a worker raises; the copy must be the same error.
    import pickle

    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (copy.code, copy.message, copy.args) == (error.code, error.message, error.args)
    assert copy.status_hint == error.status_hint
