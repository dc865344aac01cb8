"""The named errors of the provenance package (all :class:`~ned_fx.errors.NedFxError`)."""

from __future__ import annotations

from ..errors import InvalidParameterError, NedFxError, OutputWriteError


class ProvenanceError(NedFxError):
    """A provenance record (embedded in a file, or given to a writer) is malformed; the message names the field."""

    exit_code = 3


class ConsentRequiredError(NedFxError):
    """An edit was asked for without the performer's consent reference, and the policy requires one."""

    exit_code = 9


class SigningError(InvalidParameterError):
    """Content Credentials (C2PA) could not be signed: a certificate, key or format the signer refuses."""


class AuditLogError(OutputWriteError):
    """The audit log cannot be written (or, read strictly, holds a malformed line)."""
