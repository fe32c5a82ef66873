"""Validators shared by the apps' services, models and forms."""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError

# Control characters, invisible ones (zero-width, bidirectional overrides), private-use, surrogate and unassigned
# code points, line and paragraph separators: an identifier or a name shows in admin, the dashboard, commands'
# output, logs and audit records, and two must never read the same (a bidi override makes "a-\u202eb" show as
# another service's name; a zero-width space makes two that look alike).
UNSEEN_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})


def unseen_characters(text: str) -> list[str]:
    """The code points of `text` nobody sees (UNSEEN_CATEGORIES), as sorted `U+XXXX`; [] for none (or not text)."""
    if not isinstance(text, str):
        return []
    return sorted({f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in UNSEEN_CATEGORIES})


def unseen_characters_message(text: str) -> str | None:
    """Why `text` is refused for holding a character nobody sees, or None."""
    unseen = unseen_characters(text)
    if not unseen:
        return None
    return f"Only visible characters: not {', '.join(unseen)} (a control, invisible or bidirectional character)."


def refuse_unseen_characters(value: str) -> None:
    """A model or form field validator: no character nobody sees (UNSEEN_CATEGORIES)."""
    message = unseen_characters_message(value)
    if message:
        raise ValidationError(message, code="invisible_character")
