"""The results route of the document: one recognised file in a format of SPEC's table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ocrstream.core.exports import EXPORT_FORMATS
from ocrstream.core.openapi.schema import ref

if TYPE_CHECKING:
    from collections.abc import Callable

    from ocrstream.core.openapi.schema import Schema

__all__ = ["export_operation"]

_WHAT = {
    "json": "pages, lines and words with their boxes (`FileDocument`)",
    "txt": "the text, pages separated by a form feed",
    "hocr": "hOCR 1.2 (`ocr_page`, `ocr_line`, `ocrx_word` with bbox and x_wconf)",
    "alto": "ALTO 4.4, MeasurementUnit pixel",
    "pdf": "a searchable PDF: a PDF's own pages, or an image's pixels, with an invisible "
    "text layer on the words",
}


def export_operation(
    *,
    job_id: Schema,
    unauthorized: Schema,
    problem: Callable[[int, str], Schema],
    extra: Schema,
) -> Schema:
    """``GET /api/ocr/{job_id}/files/{file_index}``.

    Args:
        job_id: the job id path parameter.
        unauthorized: the 401 response.
        problem: makes a problem response from a status and a description.
        extra: the operation's security, if any.
    """
    content: Schema = {}
    for format, (media_type, _extension) in EXPORT_FORMATS.items():
        schema: Schema = (
            ref("FileDocument")
            if format == "json"
            else {"type": "string", "description": f"`format={format}`: {_WHAT[format]}"}
        )
        content[media_type.split(";")[0]] = {"schema": schema}
    return {
        "operationId": "exportFile",
        "tags": ["jobs"],
        "summary": "One recognised file as JSON, text, hOCR, ALTO or a searchable PDF",
        "description": (
            "Served on a finished or running job once the file is recognised. Every "
            'answer carries `Content-Disposition: attachment; filename="<stem>.<ext>"`.'
        ),
        "parameters": [
            job_id,
            {
                "name": "file_index",
                "in": "path",
                "required": True,
                "description": "The file's index in the upload (body order, from 0).",
                "schema": {"type": "integer", "minimum": 0},
            },
            {
                "name": "format",
                "in": "query",
                "required": False,
                "description": "; ".join(f"`{name}`: {what}" for name, what in _WHAT.items()),
                "schema": {"type": "string", "enum": list(EXPORT_FORMATS), "default": "json"},
            },
        ],
        "responses": {
            "200": {
                "description": "The file in the format asked for.",
                "headers": {
                    "Content-Disposition": {
                        "description": "`attachment`, with the file's name and the format's "
                        "extension (json, txt, hocr, xml, pdf)",
                        "schema": {"type": "string"},
                        "required": True,
                    }
                },
                "content": content,
            },
            "400": problem(400, "An unknown format."),
            "401": unauthorized,
            "404": problem(404, "No such job or file: unknown, or expired after RESULT_TTL."),
            "409": problem(409, "The file is still being worked on (or was never recognised)."),
            "422": problem(422, "The file failed validation or OCR: `code` is its error's."),
            "500": problem(500, "The searchable PDF could not be made."),
        },
    } | extra
