"""Provenance, consent and audit: every output says that (and how) its facial expression was edited.

* :mod:`.record`: the edit record (:class:`EditRecord`, schema ``ned_fx.edit/1``) and :func:`build_record`.
* :mod:`.embed`: how each format carries it (EXR attributes, PNG chunks, TIFF/JPEG XMP, movie tags); the media
  writers use it (``write_image(..., provenance=record)``, ``MovieWriter(..., provenance=record)``) and
  :func:`ned_fx.media.readers.read_provenance` reads it back.
* :mod:`.c2pa`: signed Content Credentials for delivered stills and movies (``sign_file``, ``verify_file``).
* :mod:`.audit`: the append-only JSON-lines audit log (:class:`AuditLog`, :func:`read_audit_log`).
* :mod:`.consent`: the consent policy (:class:`ConsentPolicy`).

Importing this package loads only the standard library (``c2pa`` is imported when signing or verifying).
"""

from .audit import AUDIT_SCHEMA, AuditLog, AuditLogWarning, default_audit_path, output_entry, read_audit_log
from .consent import ConsentPolicy, normalise_consent
from .errors import AuditLogError, ConsentRequiredError, ProvenanceError, SigningError
from .record import SCHEMA, EditRecord, build_record, file_sha256, now_utc, sentence

__all__ = ["EditRecord", "build_record", "file_sha256", "now_utc", "sentence", "SCHEMA",
           "AuditLog", "read_audit_log", "default_audit_path", "output_entry", "AuditLogWarning", "AUDIT_SCHEMA",
           "ConsentPolicy", "normalise_consent",
           "ProvenanceError", "ConsentRequiredError", "SigningError", "AuditLogError"]
