"""The ``ocrstream`` command's start-up checks, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ocrstream", "serve", "--port", "0"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_bad_variable_stops_start_up_with_one_line() -> None:
    result = _serve({"OCRSTREAM_MAX_FILES": "lots"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "OCRSTREAM_MAX_FILES" in lines[0]


def test_tesseract_without_its_binary_stops_start_up(tmp_path: Path) -> None:
    python_dir = str(Path(sys.executable).parent)
    result = _serve({"OCRSTREAM_OCR_ENGINE": "tesseract", "PATH": f"{tmp_path}:{python_dir}"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "OCRSTREAM_OCR_ENGINE=tesseract" in lines[0]
    assert "tesseract" in lines[0]
