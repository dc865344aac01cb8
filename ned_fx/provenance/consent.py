"""The consent policy: whether an edit needs the performer's consent reference, and what a valid one looks like.

A consent reference is free text or an id that points at the studio's own record of the performer's consent (a
release form number, a contract clause, a ticket). ned_fx never judges it; it carries it into every output's
provenance and the audit log, and a daemon started with ``--require-consent`` refuses edits that have none.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from ..errors import InvalidParameterError
from .errors import ConsentRequiredError

#: Longest consent reference accepted (characters).
MAX_CONSENT = 500

HOW_TO_PASS = ("pass one with `ned-fx edit --consent REF`, `Client.open(..., consent=\"REF\")`, a `consent` "
               "column/field in the shot list, or the Consent field of the Nuke/Resolve node")


def normalise_consent(consent: str | None) -> str | None:
    """A consent reference with surrounding blanks removed; None (or only blanks) is None.

    Raises:
        InvalidParameterError: not a string, longer than :data:`MAX_CONSENT`, or holding control characters
            (line breaks, tabs, NUL): a reference is one line of text.
    """
    if consent is None:
        return None
    if not isinstance(consent, str):
        raise InvalidParameterError(f"a consent reference must be text, got {type(consent).__name__}")
    text = consent.strip()
    if not text:
        return None
    if len(text) > MAX_CONSENT:
        raise InvalidParameterError(f"a consent reference is at most {MAX_CONSENT} characters (got {len(text)}); "
                                    f"give an id or a short reference to the consent record")
    bad = sorted({f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")})
    if bad:
        raise InvalidParameterError(f"a consent reference is one line of text without control characters "
                                    f"(found {', '.join(bad)})")
    return text


@dataclass(frozen=True)
class ConsentPolicy:
    """Whether edits need a consent reference.

    Attributes:
        required: refuse an edit without a consent reference (``ned-fx serve --require-consent``).
    """

    required: bool = False

    def check(self, consent: str | None, what: str = "this edit") -> str | None:
        """The normalised consent reference of an edit, if the policy lets it through.

        Args:
            consent: the reference given (None or blank: none).
            what: the edit, for the message (``"opening /shows/sh040/plate.####.exr"``).

        Returns:
            the reference (None when none was given and none is required).

        Raises:
            ConsentRequiredError: none was given and the policy requires one (the message says how to pass one).
            InvalidParameterError: a malformed reference (see :func:`normalise_consent`).
        """
        text = normalise_consent(consent)
        if text is None and self.required:
            raise ConsentRequiredError(
                f"{what} was refused: this ned_fx daemon requires the performer's consent reference for every "
                f"edit (started with --require-consent); {HOW_TO_PASS}")
        return text
