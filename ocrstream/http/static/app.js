// ocrstream's page: upload with XMLHttpRequest, read the SSE response as it arrives,
// resume with fetch if the connection drops (EventSource cannot send the API token).
// No framework, no build step.
// Every name and every text from the server is set with textContent, never as HTML.
"use strict";

(() => {
  const FINAL = new Set(["invalid", "done", "error"]);
  const STATE_LABELS = {
    uploading: "Uploading", received: "Received", validating: "Checking",
    valid: "Valid", invalid: "Not accepted", recognising: "Reading text",
    done: "Done", error: "Failed",
  };
  // How far along each state is, for the overall bar.
  const STATE_PROGRESS = {
    uploading: 0, received: 0.25, validating: 0.4, valid: 0.6, recognising: 0.75,
    done: 1, invalid: 1, error: 1,
  };
  // The server's exports of one recognised file: format, link text, extension.
  const EXPORTS = [
    { format: "txt", label: "TXT", extension: "txt" },
    { format: "json", label: "JSON", extension: "json" },
    { format: "hocr", label: "hOCR", extension: "hocr" },
    { format: "alto", label: "ALTO", extension: "xml" },
    { format: "pdf", label: "PDF", extension: "pdf" },
  ];

  const $ = (selector) => document.querySelector(selector);
  const form = $("#upload-form");
  const input = $("#files");
  const drop = $("#drop");
  const selection = $("#selection");
  const ocrToggle = $("#ocr");
  const tokenInput = $("#token");
  const uploadButton = $("#upload");
  const uploadBar = $("#upload-progress");
  const overallBar = $("#progress");
  const status = $("#status");
  const failure = $("#failure");
  const notice = $("#notice");
  const jobLine = $("#job");
  const jobLink = $("#job-link");
  const rowList = $("#rows");
  const rowTemplate = $("#row-template");

  let chosen = [];
  let current = null; // the job being shown

  // The API token (OCRSTREAM_API_TOKEN), kept for this tab only.
  const TOKEN_KEY = "ocrstream-api-token";
  tokenInput.value = sessionStorage.getItem(TOKEN_KEY) || "";
  tokenInput.addEventListener("input", () => sessionStorage.setItem(TOKEN_KEY, tokenInput.value.trim()));

  function authorization() {
    const token = tokenInput.value.trim();
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  // ---- SSE parsing (the text/event-stream format, fed in arbitrary pieces) ----

  function sseParser(onFrame) {
    let buffer = "";
    let data = [];
    let type = "";
    let id = null;
    function line(text) {
      if (text === "") {
        if (data.length) onFrame({ id, event: type || "message", data: data.join("\n") });
        data = [];
        type = "";
        return;
      }
      if (text.startsWith(":")) return; // a comment (keep-alive)
      const colon = text.indexOf(":");
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? "" : text.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") data.push(value);
      else if (field === "event") type = value;
      else if (field === "id" && !value.includes("\0")) id = value;
    }
    return (chunk) => {
      buffer += chunk;
      const ends = /\r\n|\r|\n/g;
      let start = 0;
      let match;
      while ((match = ends.exec(buffer)) !== null) {
        // A lone "\r" at the very end may be the first half of "\r\n": wait for more.
        if (match[0] === "\r" && match.index === buffer.length - 1) break;
        line(buffer.slice(start, match.index));
        start = ends.lastIndex;
      }
      buffer = buffer.slice(start);
    };
  }

  // ---- the page's state ----

  function setStatus(state, message) {
    status.dataset.state = state;
    status.textContent = message;
  }

  function setBar(bar, fraction) {
    const percent = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
    bar.value = percent;
    bar.textContent = `${percent}%`;
  }

  function plural(count, word) {
    return `${count} ${word}${count === 1 ? "" : "s"}`;
  }

  function formatBytes(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  }

  function showSelection() {
    const total = chosen.reduce((sum, file) => sum + file.size, 0);
    selection.textContent = chosen.length
      ? `${plural(chosen.length, "file")} chosen (${formatBytes(total)}).`
      : "";
    uploadButton.disabled = !chosen.length || Boolean(current && !current.finished);
    if (chosen.length && (!current || current.finished)) {
      setStatus("idle", `${plural(chosen.length, "file")} ready to upload.`);
    }
  }

  function makeRow(job, index, name, file) {
    const fragment = rowTemplate.content.cloneNode(true);
    const el = fragment.querySelector("li");
    const row = {
      el, index, name, state: "uploading", events: [], text: null, lines: null,
      validation: null, error: null, job, pageCount: 1, pagesRead: 0, pageTexts: [],
      nameEl: el.querySelector(".file-name"),
      stateEl: el.querySelector(".file-state"),
      detailEl: el.querySelector(".file-detail"),
      pagesEl: el.querySelector(".file-pages"),
      exportsEl: el.querySelector(".file-exports"),
      errorEl: el.querySelector(".file-error"),
      textEl: el.querySelector(".file-text"),
      copyButton: el.querySelector(".copy"),
      txtButton: el.querySelector(".download-txt"),
      jsonButton: el.querySelector(".download-json"),
    };
    el.dataset.fileIndex = String(index);
    row.nameEl.textContent = name;
    row.textEl.setAttribute("aria-label", `Text read from ${name}`);
    row.copyButton.setAttribute("aria-label", `Copy the text of ${name}`);
    row.txtButton.setAttribute("aria-label", `Download the text of ${name}`);
    row.jsonButton.setAttribute("aria-label", `Download the events of ${name} as JSON`);
    if (file && file.type.startsWith("image/")) {
      const thumb = el.querySelector(".file-thumb");
      const url = URL.createObjectURL(file);
      thumb.onload = () => { thumb.hidden = false; URL.revokeObjectURL(url); };
      thumb.onerror = () => URL.revokeObjectURL(url);
      thumb.src = url;
    }
    row.copyButton.addEventListener("click", () => copyText(row));
    row.txtButton.addEventListener("click", () => download(row, "txt"));
    row.jsonButton.addEventListener("click", () => download(row, "json"));
    setRowState(row, "uploading");
    rowList.append(fragment);
    return row;
  }

  function setRowState(row, state) {
    row.state = state;
    row.el.dataset.state = state;
    row.stateEl.textContent = STATE_LABELS[state];
    row.copyButton.disabled = row.text === null;
    row.txtButton.disabled = row.text === null;
    row.jsonButton.disabled = row.events.length === 0;
  }

  function setRowError(row, error) {
    row.error = error;
    row.errorEl.textContent = error.message;
    row.errorEl.hidden = false;
  }

  function rowFor(job, data) {
    if (typeof data.file_index !== "number") return null;
    let row = job.rows[data.file_index];
    if (!row) {
      row = makeRow(job, data.file_index, data.file_name || `file-${data.file_index}`, null);
      job.rows[data.file_index] = row;
    }
    return row;
  }

  function rowProgress(row) {
    if (row.state !== "recognising" || row.pageCount < 2) return STATE_PROGRESS[row.state];
    return STATE_PROGRESS.recognising + 0.25 * (row.pagesRead / row.pageCount);
  }

  function updateOverall(job) {
    if (job.finished && !job.failed) return setBar(overallBar, 1);
    const rows = job.rows.filter(Boolean);
    const perFile = rows.length
      ? rows.reduce((sum, row) => {
        const done = row.state === "valid" && !job.ocr;
        return sum + (done ? 1 : rowProgress(row));
      }, 0) / rows.length
      : 0;
    setBar(overallBar, 0.3 * job.uploaded + 0.7 * perFile);
  }

  function setJobId(job, id) {
    if (job.id || !id) return;
    job.id = id;
    jobLink.textContent = id;
    jobLink.href = `/api/ocr/${encodeURIComponent(id)}`;
    jobLine.hidden = false;
  }

  // ---- events ----

  function onFrame(job, frame) {
    if (job !== current || job.finished) return;
    let envelope;
    try {
      envelope = JSON.parse(frame.data);
    } catch {
      return;
    }
    // After a resume the server replays from last_event_id: never apply an event twice.
    if (typeof envelope.seq === "number") {
      if (envelope.seq <= job.lastSeq) return;
      job.lastSeq = envelope.seq;
    }
    setJobId(job, envelope.job_id);
    job.events.push(envelope);
    const data = envelope.data || {};
    const row = rowFor(job, data);
    if (row) row.events.push(envelope);
    switch (envelope.type) {
      case "upload_started":
        job.started = true;
        job.uploaded = 1;
        setBar(uploadBar, 1);
        setStatus("processing",
          `Upload received (${plural(data.file_count, "file")}, ${formatBytes(data.total_bytes)}); processing…`);
        break;
      case "image_received":
        row.name = data.file_name;
        row.nameEl.textContent = data.file_name;
        row.detailEl.textContent = `${formatBytes(data.size_bytes)} received`;
        setRowState(row, "received");
        break;
      case "image_validation_start":
        setRowState(row, "validating");
        break;
      case "image_validation_success":
        row.validation = data;
        row.pageCount = data.page_count || 1;
        row.detailEl.textContent =
          `${data.format}, ${data.width} × ${data.height} px, ${formatBytes(data.size_bytes)}`
          + (row.pageCount > 1 ? `, ${plural(row.pageCount, "page")}` : "");
        setRowState(row, "valid");
        break;
      case "image_validation_error":
        row.validation = data;
        setRowError(row, data.error);
        setRowState(row, "invalid");
        break;
      case "all_images_validated":
        setStatus("processing", `Checked: ${data.valid_count} valid, ${data.invalid_count} not accepted.`
          + (job.ocr && data.valid_count ? " Reading text…" : ""));
        break;
      case "image_ocr_start":
        row.pageCount = data.page_count || row.pageCount;
        if (row.pageCount > 1) showPages(row, `Reading ${plural(row.pageCount, "page")}…`);
        setRowState(row, "recognising");
        break;
      case "page_ocr_success":
        onPage(row, data);
        break;
      case "image_ocr_success":
        onRecognised(row, data);
        break;
      case "image_ocr_error":
        setRowError(row, pageError(row, data));
        setRowState(row, "error");
        break;
      case "processing_complete":
        finish(job, false, `Complete: ${plural(data.file_count, "file")}, ${data.valid_count} valid, `
          + `${data.invalid_count} not accepted, ${data.ocr_success_count} read, `
          + `${data.ocr_error_count} failed (${(data.duration_ms / 1000).toFixed(1)} s).`);
        break;
      case "processing_error":
        finish(job, true, data.error.message);
        break;
      default:
        break;
    }
    if (row) setRowState(row, row.state); // refresh the buttons
    updateOverall(job);
  }

  // ---- pages ----

  function showPages(row, message) {
    row.pagesEl.textContent = message;
    row.pagesEl.hidden = false;
  }

  function onPage(row, data) {
    row.pageCount = data.page_count || row.pageCount;
    if (row.pageTexts[data.page_index] === undefined) row.pagesRead += 1;
    row.pageTexts[data.page_index] = data.text;
    showPages(row, `Read page ${row.pagesRead} of ${row.pageCount}`);
    showText(row, row.pageTexts);
  }

  function onRecognised(row, data) {
    row.text = data.text;
    row.lines = data.lines;
    row.pageCount = data.page_count || row.pageCount;
    showText(row, data.text.split("\f"));
    if (row.pageCount > 1) showPages(row, `All ${plural(row.pageCount, "page")} recognised`);
    if (!data.text) row.detailEl.textContent = "No text found.";
    showExports(row);
    setRowState(row, "done");
  }

  function pageError(row, data) {
    if (typeof data.page_index !== "number") return data.error;
    const where = `Page ${data.page_index + 1} of ${row.pageCount} failed`;
    return { ...data.error, message: `${where}: ${data.error.message}` };
  }

  // The pages' texts (a sparse array while they arrive), a "— page n —" line between them.
  function showText(row, texts) {
    const nodes = [];
    texts.forEach((text, index) => {
      if (index > 0) nodes.push(pageBreak(index));
      nodes.push(document.createTextNode(text));
    });
    row.textEl.replaceChildren(...nodes);
    row.textEl.hidden = false;
  }

  function pageBreak(index) {
    const mark = document.createElement("span");
    mark.className = "page-break";
    mark.textContent = `— page ${index + 1} —`;
    return mark;
  }

  function finish(job, failed, message) {
    job.finished = true;
    job.failed = failed;
    if (job.resuming) job.resuming.abort();
    if (failed) {
      failure.textContent = `The request failed: ${message}`;
      failure.hidden = false;
      setStatus("failed", `Failed: ${message}`);
      for (const row of job.rows.filter(Boolean)) {
        if (FINAL.has(row.state) || (row.state === "valid" && !job.ocr)) continue;
        setRowError(row, { code: "not_processed", message: `Not processed: ${message}` });
        setRowState(row, "error");
      }
    } else {
      setStatus("complete", message);
    }
    updateOverall(job);
    uploadButton.disabled = !chosen.length;
  }

  // ---- the request ----

  function problemMessage(xhr) {
    let detail = "";
    if ((xhr.getResponseHeader("Content-Type") || "").includes("json")) {
      try {
        const problem = JSON.parse(xhr.responseText);
        detail = problem.detail || problem.title || "";
      } catch {
        detail = "";
      }
    }
    const head = `HTTP ${xhr.status}${xhr.statusText ? ` ${xhr.statusText}` : ""}`;
    return detail ? `${detail} (${head})` : head;
  }

  function upload() {
    const files = chosen.slice();
    if (!files.length || (current && !current.finished)) return;
    const job = {
      id: null, lastSeq: -1, started: false, finished: false, failed: false,
      ocr: ocrToggle.checked, uploaded: 0, rows: [], events: [], resuming: null,
    };
    current = job;
    rowList.replaceChildren();
    failure.hidden = true;
    failure.textContent = "";
    notice.textContent = "";
    jobLine.hidden = true;
    setBar(uploadBar, 0);
    setBar(overallBar, 0);
    uploadButton.disabled = true;
    files.forEach((file, index) => { job.rows[index] = makeRow(job, index, file.name, file); });
    setStatus("uploading", `Uploading ${plural(files.length, "file")}…`);

    const body = new FormData();
    for (const file of files) body.append("files", file, file.name);
    const xhr = new XMLHttpRequest();
    const feed = sseParser((frame) => onFrame(job, frame));
    let streaming = false;
    let seen = 0;
    const pump = () => {
      if (!streaming) return;
      const text = xhr.responseText;
      if (text.length > seen) {
        feed(text.slice(seen));
        seen = text.length;
      }
    };
    xhr.open("POST", job.ocr ? "/api/ocr" : "/api/ocr?ocr=false");
    xhr.setRequestHeader("Accept", "text/event-stream");
    for (const [name, value] of Object.entries(authorization())) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => {
      if (!event.lengthComputable || job.started) return;
      job.uploaded = event.loaded / event.total;
      setBar(uploadBar, job.uploaded);
      updateOverall(job);
    };
    xhr.upload.onload = () => {
      if (job.started) return;
      job.uploaded = 1;
      setBar(uploadBar, 1);
      setStatus("processing", "Upload sent; the server is reading it…");
    };
    xhr.onreadystatechange = () => {
      if (xhr.readyState !== XMLHttpRequest.HEADERS_RECEIVED) return;
      const type = xhr.getResponseHeader("Content-Type") || "";
      streaming = xhr.status === 200 && type.startsWith("text/event-stream");
      const location = xhr.getResponseHeader("Location");
      if (streaming && location) setJobId(job, location.split("/").pop());
    };
    xhr.onprogress = pump;
    xhr.onload = () => {
      if (!streaming) {
        finish(job, true, problemMessage(xhr));
        return;
      }
      pump();
      if (!job.finished) connectionLost(job);
    };
    xhr.onerror = () => {
      pump();
      if (!job.finished) connectionLost(job);
    };
    xhr.send(body);
  }

  function connectionLost(job) {
    if (job !== current || job.finished) return;
    if (!job.started || !job.id) {
      finish(job, true, "the connection was lost before the upload was complete.");
      return;
    }
    resume(job);
  }

  // Resume with fetch, from the last seq seen, sending the token (EventSource could not).
  // A pause before each new try; a stream that delivered something resets the count.
  // 204 (the job had already ended), 404 (unknown or expired) and other refusals stop.
  const RESUME_TRIES = 5;

  async function resume(job) {
    const aborter = new AbortController();
    job.resuming = aborter;
    let tries = 0;
    while (!job.finished && job === current && tries < RESUME_TRIES) {
      setStatus("reconnecting", "The connection dropped; reconnecting…");
      if (tries) await new Promise((done) => setTimeout(done, 500 * tries));
      tries += 1;
      const before = job.lastSeq;
      const url = `/api/ocr/${encodeURIComponent(job.id)}/events?last_event_id=${job.lastSeq}`;
      let response;
      try {
        response = await fetch(url, {
          headers: { Accept: "text/event-stream", ...authorization() },
          cache: "no-store",
          signal: aborter.signal,
        });
      } catch {
        continue; // no answer: try again
      }
      if (response.status !== 200) {
        if (!job.finished) finish(job, true, `the job's events could not be resumed (HTTP ${response.status}).`);
        return;
      }
      setStatus("processing", "Reconnected; processing…");
      const feed = sseParser((frame) => onFrame(job, frame));
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          feed(decoder.decode(value, { stream: true }));
        }
      } catch {
        // dropped again (or aborted once the job finished)
      }
      if (job.lastSeq > before) tries = 0;
    }
    if (!job.finished && job === current) {
      finish(job, true, "the connection was lost and the job's events could not be resumed.");
    }
  }

  // ---- per-file actions ----

  function baseName(name) {
    const stem = name.replace(/\.[^.]*$/, "") || "file";
    return stem.replace(/[^\w.-]+/g, "_").slice(0, 100);
  }

  function saveBlob(blob, name) {
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = name;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  function download(row, kind) {
    let blob;
    if (kind === "txt") {
      blob = new Blob([row.text ?? ""], { type: "text/plain;charset=utf-8" });
    } else {
      const document_ = {
        job_id: row.job.id, file_index: row.index, file_name: row.name, state: row.state,
        validation: row.validation, error: row.error, text: row.text, lines: row.lines,
        events: row.events,
      };
      blob = new Blob([JSON.stringify(document_, null, 2)], { type: "application/json" });
    }
    saveBlob(blob, `${baseName(row.name)}.${kind}`);
  }

  // ---- the server's exports ----

  function exportUrl(row, format) {
    return `/api/ocr/${encodeURIComponent(row.job.id)}/files/${row.index}?format=${format}`;
  }

  // Plain links (the server names the file); with a token, a click fetches instead.
  function showExports(row) {
    if (!row.job.id || row.exportsEl.querySelector("a")) return;
    for (const spec of EXPORTS) {
      const link = Object.assign(document.createElement("a"), {
        className: `export export-${spec.format}`, href: exportUrl(row, spec.format),
        download: "", textContent: spec.label,
      });
      link.setAttribute("aria-label", `Export ${row.name} as ${spec.label}`);
      link.addEventListener("click", (event) => {
        if (!tokenInput.value.trim()) return;
        event.preventDefault(); // a link cannot send the Authorization header
        fetchExport(row, spec);
      });
      row.exportsEl.append(link);
    }
    row.exportsEl.hidden = false;
  }

  async function fetchExport(row, spec) {
    const what = `the ${spec.label} of ${row.name}`;
    try {
      const response = await fetch(exportUrl(row, spec.format), {
        headers: authorization(), cache: "no-store",
      });
      if (!response.ok) throw new Error(await responseProblem(response));
      const name = attachmentName(response.headers.get("Content-Disposition"));
      saveBlob(await response.blob(), name || `${baseName(row.name)}.${spec.extension}`);
      notice.textContent = `Downloaded ${what}.`;
    } catch (error) {
      notice.textContent = `Could not download ${what}: ${error.message}`;
    }
  }

  async function responseProblem(response) {
    const head = `HTTP ${response.status}`;
    if (!(response.headers.get("Content-Type") || "").includes("json")) return head;
    try {
      const problem = await response.json();
      const detail = problem.detail || problem.title;
      return detail ? `${detail} (${head})` : head;
    } catch {
      return head;
    }
  }

  // The file name of a Content-Disposition header: RFC 6266's filename* first.
  function attachmentName(header) {
    if (!header) return "";
    const extended = /filename\*\s*=\s*UTF-8''([^;\s]+)/i.exec(header);
    try {
      if (extended) return decodeURIComponent(extended[1]);
    } catch {
      // a malformed escape: fall back to the plain name
    }
    const plain = /filename\s*=\s*"((?:[^"\\]|\\.)*)"/i.exec(header);
    return plain ? plain[1].replace(/\\(.)/g, "$1") : "";
  }

  async function copyText(row) {
    try {
      await navigator.clipboard.writeText(row.text ?? "");
      notice.textContent = `Copied the text of ${row.name}.`;
    } catch {
      notice.textContent = `Could not copy the text of ${row.name}; select it instead.`;
    }
  }

  // ---- picking and dropping ----

  input.addEventListener("change", () => {
    chosen = Array.from(input.files);
    showSelection();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    upload();
  });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("dragging"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    chosen = Array.from(event.dataTransfer.files);
    showSelection();
  });
  // A file dropped next to the box must not make the browser navigate away.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
})();
