"""Captions and prompts as users give them: what can be one (no torch here, so the studio's parameter
checks and the CLI use it before torch is loaded). `spec.encode_text` turns them into the contract's bytes."""

from __future__ import annotations

TEXT_BYTES = 128  # a caption or prompt is at most this many bytes of UTF-8


def text_problem(text: object, what: str = "the prompt") -> str | None:
    """Why `text` cannot be a caption or prompt (None if it can): one line for the user, naming it as `what`."""
    if not isinstance(text, str):
        return f"{what} must be text, not {type(text).__name__}"
    if not text.strip():
        return f"{what} is empty; describe the image, e.g. 'red heart'"
    if "\0" in text:
        return f"{what} contains a NUL character; remove it"
    n = len(text.encode("utf-8"))
    if n > TEXT_BYTES:
        return f"{what} is {n} bytes of UTF-8; at most {TEXT_BYTES} fit, shorten it"
    return None
