"""Hooks into rapidocr-onnxruntime 1.4.x: the recogniser's evidence for the spacing
and for the words' places.

Both signals are read by wrapping two attributes of the engine's recogniser (its
ONNX session, to see the batch of crops, and its CTC decoder, to see the per-frame
probabilities); if a release changes them, recognition still works, without the
recovered spaces. Each decoded line comes back as ``(text, score, spans)``, ``spans``
the words' places along the line (:func:`~ocrstream.engines.rapidocr.spacing.word_spans`)
or None; the library passes the third item on into its result rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ocrstream.engines.rapidocr.spacing import respace, word_spans

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["install_spacing"]


def install_spacing(ocr: Any) -> bool:
    """Wrap the recogniser's session and decoder so that decoded text gets its spaces.

    Returns:
        whether the recogniser had the expected shape (rapidocr-onnxruntime 1.4.x).
    """
    recogniser: Any = getattr(ocr, "text_rec", None)
    session: Any = getattr(recogniser, "session", None)
    decoder: Any = getattr(recogniser, "postprocess_op", None)
    characters: Any = getattr(decoder, "character", None)
    if not (callable(session) and callable(decoder) and isinstance(characters, list)):
        return False
    if not characters or characters[-1] != " ":
        return False
    tap = _BatchTap(session)
    recogniser.session = tap
    recogniser.postprocess_op = _SpacingDecoder(decoder, tap, [str(c) for c in characters])
    return True


class _BatchTap:
    """Stands in for the recogniser's ONNX session and keeps its last input batch."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.batch: NDArray[np.float32] | None = None

    def __call__(self, batch: NDArray[np.float32]) -> Any:
        self.batch = batch
        return self._session(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


class _SpacingDecoder:
    """Stands in for the CTC decoder; adds the spaces the greedy decoding dropped, and
    the words' places along the line."""

    def __init__(self, decoder: Any, tap: _BatchTap, characters: list[str]) -> None:
        self._decoder = decoder
        self._tap = tap
        self._characters = characters
        self.character = decoder.character

    def __call__(self, preds: Any, return_word_box: bool = False, **kwargs: Any) -> Any:
        results = self._decoder(preds, return_word_box, **kwargs)
        batch, self._tap.batch = self._tap.batch, None
        ratios = kwargs.get("wh_ratio_list")
        if return_word_box or batch is None or ratios is None:
            return results
        if not (len(results) == len(preds) == len(batch) == len(ratios)):
            return results
        spaced = []
        for probs, crop, ratio, result in zip(preds, batch, ratios, results, strict=True):
            decoded = str(result[0])
            text = respace(probs, crop, float(ratio), decoded, self._characters)
            spans = word_spans(probs, crop, float(ratio), decoded, text, self._characters)
            spaced.append((text, result[1], spans))
        return spaced

    def __getattr__(self, name: str) -> Any:
        return getattr(self._decoder, name)
