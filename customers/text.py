"""What every string that enters must be: valid Unicode text without NUL bytes.

JSON bodies, query parameters, CSV cells, admin forms and headers all pass through
``text_problem``. A lone surrogate (JSON's ``"\\udfff"``) cannot be written as UTF-8, so a
row holding one would break every page that shows it; PostgreSQL refuses NUL bytes in
text and jsonb. Both are refused where they enter, with a message naming the field.
"""

NUL_MESSAGE = "must not contain NUL bytes"
SURROGATE_MESSAGE = "must be valid Unicode text (it holds a lone surrogate)"


def is_utf8_encodable(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_problem(value: str, *, max_length: int | None = None) -> str | None:
    """Why ``value`` may not enter (NUL byte, lone surrogate, too long), or None."""
    if "\x00" in value:
        return NUL_MESSAGE
    if not is_utf8_encodable(value):
        return SURROGATE_MESSAGE
    if max_length is not None and len(value) > max_length:
        return f"must be at most {max_length} characters"
    return None


def repaired_text(value: str) -> str:
    """``value`` with each lone surrogate replaced by U+FFFD (for repairing stored data)."""
    if is_utf8_encodable(value):
        return value
    return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def abbreviated(value: str, *, limit: int = 40) -> str:
    """``value`` cut to ``limit`` characters (with "…"), for echoing input in a message."""
    return value if len(value) <= limit else value[:limit] + "…"
