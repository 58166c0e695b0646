"""The SPEC's ordering rules 1-6 as one checker, shared by unit, property and e2e tests
(rule 4 with pages: a file of n > 1 pages gets its ``page_ocr_success`` events between
its ``image_ocr_start`` and its OCR result, each page once, all of them before a success)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StreamOutcome", "check_stream"]

TERMINAL = {"processing_complete", "processing_error"}
VALIDATION_RESULTS = {"image_validation_success", "image_validation_error"}
OCR_RESULTS = {"image_ocr_success", "image_ocr_error"}
PAGE = "page_ocr_success"
OCR_KINDS = OCR_RESULTS | {"image_ocr_start", PAGE}


@dataclass
class StreamOutcome:
    """What a well-ordered stream says happened."""

    terminal: str
    error_code: str | None = None
    file_count: int | None = None
    outcomes: dict[int, tuple[str, str]] = field(default_factory=dict)
    ocr: dict[int, str] = field(default_factory=dict)
    page_counts: dict[int, int] = field(default_factory=dict)
    #: page_index -> source of each page_ocr_success, per file
    pages: dict[int, dict[int, str]] = field(default_factory=dict)
    failed_pages: dict[int, int | None] = field(default_factory=dict)


def check_stream(events: list[dict[str, Any]], *, ocr: bool = False) -> StreamOutcome:
    """Assert SPEC rules 1-6 on one job's decoded event envelopes; return the outcome.

    Args:
        events: the ``data:`` JSON documents in arrival order.
        ocr: whether OCR was on (then every valid file needs one OCR result).
    """
    assert events, "a stream has at least its terminal event"
    job_ids = {event["job_id"] for event in events}
    assert len(job_ids) == 1, f"one job per stream, got {job_ids}"
    assert [event["seq"] for event in events] == list(range(len(events))), "seq is 0,1,2,…"
    types = [event["type"] for event in events]
    terminal_positions = [i for i, kind in enumerate(types) if kind in TERMINAL]
    assert terminal_positions == [len(events) - 1], f"exactly one terminal, last: {types}"
    last = events[-1]
    outcome = StreamOutcome(terminal=last["type"])
    if last["type"] == "processing_error":
        outcome.error_code = last["data"]["error"]["code"]
    # Rule 1
    if types[0] == "processing_error":
        assert len(events) == 1, "a failure before the body is complete is the only event"
        return outcome
    assert types[0] == "upload_started", f"seq 0 is upload_started, got {types[0]}"
    assert types.count("upload_started") == 1
    file_count = events[0]["data"]["file_count"]
    outcome.file_count = file_count
    assert file_count >= 1, "a job without files ends with no_files instead"
    # Rule 2: per file order and body-order indexes
    seen: dict[int, list[str]] = defaultdict(list)
    validated_at: dict[int, int] = {}
    ocr_at: dict[int, int] = {}
    names: dict[int, str] = {}
    for position, event in enumerate(events):
        data = event["data"]
        kind = event["type"]
        if "file_index" not in data:
            continue
        index = data["file_index"]
        assert 0 <= index < file_count, f"file_index {index} out of 0..{file_count - 1}"
        names.setdefault(index, data["file_name"])
        assert data["file_name"] == names[index], "a file keeps its name"
        seen[index].append(kind)
        if kind in VALIDATION_RESULTS:
            assert index not in validated_at, f"file {index} validated twice"
            validated_at[index] = position
            if kind == "image_validation_success":
                outcome.outcomes[index] = ("valid", data["format"])
                outcome.page_counts[index] = data["page_count"]
                assert data["page_count"] >= 1
            else:
                outcome.outcomes[index] = ("invalid", data["error"]["code"])
        count = outcome.page_counts.get(index)
        if kind == "image_ocr_start":
            assert data["page_count"] == count, f"file {index}: start says {data['page_count']}"
        if kind == PAGE:
            assert count is not None, f"a page event before file {index} was valid"
            assert count > 1, f"page events for a 1-page file {index}"
            assert index not in ocr_at, f"file {index}: a page event after its OCR result"
            assert data["page_count"] == count
            page = data["page_index"]
            assert 0 <= page < count, f"file {index}: page_index {page} out of 0..{count - 1}"
            pages = outcome.pages.setdefault(index, {})
            assert page not in pages, f"file {index}: page {page} twice"
            pages[page] = data["source"]
            assert data["source"] in {"ocr", "text_layer"}
            assert all(line["page_index"] == page for line in data["lines"])
        if kind in OCR_RESULTS:
            assert index not in ocr_at, f"file {index} recognised twice"
            ocr_at[index] = position
            outcome.ocr[index] = "ok" if kind == "image_ocr_success" else data["error"]["code"]
            assert count is not None
            if kind == "image_ocr_success":
                assert data["page_count"] == count
                if count > 1:
                    assert sorted(outcome.pages.get(index, {})) == list(range(count)), (
                        f"file {index}: a success needs every page's event first"
                    )
                assert data["text"].count("\f") == count - 1, "pages joined by form feeds"
                assert all(0 <= line["page_index"] < count for line in data["lines"])
            else:
                failed = data.get("page_index")
                assert failed is None or 0 <= failed < count
                assert failed not in outcome.pages.get(index, {}), "a failed page had success"
                outcome.failed_pages[index] = failed
    for index, kinds in seen.items():
        core = [kind for kind in kinds if kind not in OCR_KINDS]
        assert len(core) <= 3, f"file {index}: {kinds}"
        for wanted, got in zip(("image_received", "image_validation_start"), core, strict=False):
            assert got == wanted, f"file {index} out of order: {kinds}"
        if len(core) == 3:
            assert core[2] in VALIDATION_RESULTS, f"file {index}: {kinds}"
        # Rule 4: OCR only after a validation success
        ocr_kinds = [kind for kind in kinds if kind in OCR_KINDS]
        if ocr_kinds:
            assert outcome.outcomes.get(index, ("",))[0] == "valid", f"OCR of invalid {index}"
            assert kinds.index(ocr_kinds[0]) > kinds.index("image_validation_success")
            assert ocr_kinds[0] == "image_ocr_start", f"file {index}: {kinds}"
            assert ocr_kinds.count("image_ocr_start") == 1, f"file {index}: {kinds}"
    received_order = [e["data"]["file_index"] for e in events if e["type"] == "image_received"]
    assert received_order == sorted(received_order), f"files arrive in body order: {received_order}"
    completed = last["type"] == "processing_complete"
    # Rule 3
    validated_all = [i for i, kind in enumerate(types) if kind == "all_images_validated"]
    assert len(validated_all) <= 1
    if completed:
        assert sorted(seen) == list(range(file_count)), "every file appears"
        assert len(validated_at) == file_count, "every file has one validation result"
        assert len(validated_all) == 1, "all_images_validated once"
        assert validated_all[0] > max(validated_at.values()), "…after every result"
        summary = events[validated_all[0]]["data"]
        valid = sum(1 for state, _ in outcome.outcomes.values() if state == "valid")
        assert summary == {
            "file_count": file_count,
            "valid_count": valid,
            "invalid_count": file_count - valid,
        }
        # Rule 4 and 5: every valid file recognised once with OCR on, before the end
        if ocr:
            valid_indexes = {i for i, (state, _) in outcome.outcomes.items() if state == "valid"}
            assert set(ocr_at) == valid_indexes, "each valid file gets one OCR result"
        else:
            assert not ocr_at, "no OCR events with OCR off"
        final = last["data"]
        assert final["file_count"] == file_count
        assert final["valid_count"] == valid
        assert final["invalid_count"] == file_count - valid
        assert final["ocr_success_count"] == sum(1 for v in outcome.ocr.values() if v == "ok")
        assert final["ocr_error_count"] == sum(1 for v in outcome.ocr.values() if v != "ok")
    elif validated_all:
        assert validated_all[0] > max(validated_at.values())
    return outcome
