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


def test_sigterm_to_the_process_group_shuts_down_cleanly(tmp_path: Path) -> None:
    import signal
    import socket
    import time

    import httpx

    from tests.images import scripted_png

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "OCRSTREAM_OCR_ENGINE": "fake", "OCRSTREAM_OCR_WORKERS": "2"}
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "ocrstream", "serve", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, like a terminal's job
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{port}/api/ocr",
                    files={"files": ("a.png", scripted_png("hello"), "image/png")},
                    timeout=30,
                )
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert "image_ocr_success" in response.text  # the OCR workers are running
        # Ctrl-C or `kill -TERM -PGID` reaches the workers too; they must leave the
        # shutdown to the server.
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    text = log.read_text()
    assert "received SIGTERM" in text
    assert "Traceback" not in text
    assert "ERROR" not in text
