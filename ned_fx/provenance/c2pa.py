"""Signed Content Credentials (C2PA) for delivered stills and movies, through ``c2pa-python``.

:func:`sign_file` adds a C2PA manifest signed with the studio's own certificate chain and key: a ``c2pa.actions``
assertion (the file was opened from its pre-signing state and ``c2pa.edited`` by ned_fx, with IPTC's digital
source type and the sentence) and the edit record itself as the assertion :data:`ASSERTION_LABEL`. Anyone can check
it with :func:`verify_file` (``ned-fx provenance FILE``) or any C2PA reader: changing one byte of the pixels makes
verification fail.

Certificates: C2PA signs with an end-entity certificate (not a CA certificate) whose extended key usage includes
``emailProtection`` or ``documentSigning``, issued by the studio's CA so readers can trust it (pass that CA to
:func:`verify_file` as a trust anchor); the chain file lists the signing certificate first, then its issuers.
``ta_url`` (an RFC 3161 time-stamp authority) is optional; without one nothing is fetched from the network. Formats: PNG, JPEG, TIFF, MP4/MOV (:data:`SIGNABLE`); EXR has no C2PA binding.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputNotFoundError, OutputWriteError, UnsupportedFormatError
from .errors import ProvenanceError, SigningError
from .record import DIGITAL_SOURCE_TYPE, EditRecord

#: Label of the assertion carrying the edit record.
ASSERTION_LABEL = "ned_fx.edit"
#: Extensions C2PA can sign here -> MIME type.
SIGNABLE = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".tif": "image/tiff",
            ".tiff": "image/tiff", ".mp4": "video/mp4", ".mov": "video/quicktime"}
#: Signing algorithms (the key's type must match: ES* elliptic curve, PS* RSA-PSS, Ed25519).
ALGORITHMS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")
#: Reader settings: never fetch remote manifests or OCSP answers (verification works offline).
_OFFLINE = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}


@dataclass(frozen=True)
class C2paVerdict:
    """What a file's Content Credentials say.

    Attributes:
        present: the file carries a C2PA manifest.
        state: the C2PA validation state: ``Invalid``, ``Valid`` (integrity and signature hold) or ``Trusted``
            (and the signer chains to a given trust anchor); None when there is no manifest.
        failures: ``(code, explanation)`` of every failed check (e.g. ``assertion.dataHash.mismatch``).
        signer: the signing certificate's common name; issuer: its organisation.
        record: the ned_fx edit record in the manifest (None when the manifest is not ours).
        actions: the C2PA actions (``c2pa.opened``, ``c2pa.edited`` …).
        time: the signing time, when the signature says.
    """

    present: bool
    state: str | None = None
    failures: tuple[tuple[str, str], ...] = ()
    signer: str | None = None
    issuer: str | None = None
    record: EditRecord | None = None
    actions: tuple[str, ...] = ()
    time: str | None = None
    detail: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def valid(self) -> bool:
        """Integrity and signature hold (a signer outside the trust list is not an integrity failure)."""
        return self.present and self.state in ("Valid", "Trusted")

    @property
    def trusted(self) -> bool:
        return self.present and self.state == "Trusted"

    @property
    def integrity_failures(self) -> tuple[tuple[str, str], ...]:
        """The failures other than the signer not being in a trust list."""
        return tuple(f for f in self.failures if not f[0].startswith("signingCredential.untrusted"))

    def to_dict(self) -> dict[str, Any]:
        return {"present": self.present, "state": self.state, "valid": self.valid, "trusted": self.trusted,
                "failures": [{"code": c, "explanation": e} for c, e in self.failures], "signer": self.signer,
                "issuer": self.issuer, "actions": list(self.actions), "time": self.time,
                "record": self.record.to_dict() if self.record else None}


def _pem(value: str | bytes | os.PathLike, what: str) -> str:
    """PEM text from PEM text/bytes or a file path."""
    if isinstance(value, bytes):
        text = value.decode("ascii", "replace")
    elif isinstance(value, str) and "-----BEGIN" in value:
        text = value
    else:
        path = Path(value)
        try:
            text = path.read_text("ascii", "replace")
        except FileNotFoundError:
            raise InputNotFoundError(f"the {what} file {path} does not exist") from None
        except OSError as exc:
            raise SigningError(f"cannot read the {what} file {path}: {exc.strerror or exc}") from None
    if "-----BEGIN" not in text:
        raise SigningError(f"the {what} is not PEM text (expected '-----BEGIN …-----')")
    return text


def manifest_for(record: EditRecord, title: str) -> dict[str, Any]:
    """The manifest definition: claim generator, the ``c2pa.edited`` action, the record as an assertion."""
    return {
        "claim_generator_info": [{"name": record.tool, "version": record.version}],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{
                "action": "c2pa.edited",
                "digitalSourceType": DIGITAL_SOURCE_TYPE,
                "description": record.summary,
                "softwareAgent": {"name": record.tool, "version": record.version},
            }]}},
            {"label": ASSERTION_LABEL, "data": record.to_dict()},
        ],
    }


def sign_file(src: str | os.PathLike, dst: str | os.PathLike, cert_chain_pem: str | bytes | os.PathLike,
              key_pem: str | bytes | os.PathLike, record: EditRecord, *, alg: str = "es256",
              ta_url: str | None = None) -> Path:
    """Write ``dst``: ``src`` with a signed C2PA manifest for this edit. Atomic (``src`` may be ``dst``).

    Args:
        src: the delivered still or movie (PNG, JPEG, TIFF, MP4, MOV); it is read, never changed (unless it is
            ``dst``, which is then replaced atomically).
        dst: the signed file to write (same format).
        cert_chain_pem: the signing certificate then its issuers, PEM (text, bytes or a file path).
        key_pem: the signing certificate's private key, PEM (text, bytes or a file path).
        record: the edit record to carry (a still's or a movie's).
        alg: one of :data:`ALGORITHMS`, matching the key; ta_url: an RFC 3161 time-stamp authority (network).

    Returns:
        ``dst``.

    Raises:
        UnsupportedFormatError: a format C2PA cannot sign here (the valid ones are listed).
        InputNotFoundError: ``src`` or a PEM file does not exist.
        SigningError: the certificate, key or algorithm is refused (the message says what C2PA needs).
        OutputWriteError: ``dst`` cannot be written (nothing half-written is left).
    """
    from ..media.writers import atomic_output

    src, dst = Path(src), Path(dst)
    ext = src.suffix.lower()
    if ext not in SIGNABLE:
        raise UnsupportedFormatError(f"Content Credentials (C2PA) cannot be added to {src.name}; valid: "
                                     f"{' '.join(sorted(SIGNABLE))} (EXR carries ned_fx provenance in its header)")
    if dst.suffix.lower() != ext:
        raise UnsupportedFormatError(f"the signed file must keep the format of {src.name} ({ext}), got {dst.name}")
    if not src.is_file():
        raise InputNotFoundError(f"{src}: the file does not exist")
    import c2pa

    signer = _signer(cert_chain_pem, key_pem, alg, ta_url)
    try:
        with atomic_output(dst) as tmp:
            try:
                with c2pa.Builder(manifest_for(record, dst.name)) as builder:
                    builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
                    with open(src, "rb") as source, open(tmp, "w+b") as out:
                        builder.sign(signer, SIGNABLE[ext], source, out)
            except c2pa.C2paError as exc:
                text = _short(exc)
                if any(w in text.lower() for w in ("cert", "signature", "key", "cose")):
                    raise SigningError(f"C2PA signing of {dst.name} failed ({text}); {_CERT_HELP}") from None
                raise SigningError(f"C2PA signing of {dst.name} failed ({text})") from None
    except OutputWriteError as exc:
        if isinstance(exc.__cause__, SigningError):    # atomic_output removed the temporary file; say why
            raise exc.__cause__ from None
        raise
    finally:
        signer.close()
    return dst


def _signer(cert_chain_pem, key_pem, alg: str, ta_url: str | None):
    import c2pa

    if not isinstance(alg, str) or alg.lower() not in ALGORITHMS:
        raise SigningError(f"signing algorithm {alg!r} is not valid; valid: {', '.join(ALGORITHMS)}")
    chain, key = _pem(cert_chain_pem, "certificate chain"), _pem(key_pem, "private key")
    try:
        info = c2pa.C2paSignerInfo(alg.lower().encode(), chain.encode(), key.encode(),
                                   ta_url.encode() if ta_url else None)
        return c2pa.Signer.from_info(info)
    except (c2pa.C2paError, ValueError, TypeError) as exc:
        raise SigningError(f"the signing certificate or key was refused ({_short(exc)}); {_CERT_HELP}") from None


def check_signer(cert_chain_pem: str | bytes | os.PathLike, key_pem: str | bytes | os.PathLike,
                 alg: str = "es256") -> None:
    """Sign a one-pixel PNG in memory with these credentials, so a bad certificate or key fails before any
    work (a render of hours is not lost to a typo in a key path).

    Raises:
        InputNotFoundError: a PEM file does not exist. SigningError: the credentials are refused (C2PA's reason).
    """
    import io
    import struct
    import zlib

    import c2pa

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))
    signer = _signer(cert_chain_pem, key_pem, alg, None)
    try:
        with c2pa.Builder({"claim_generator_info": [{"name": "ned_fx"}], "title": "check.png"}) as builder:
            builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
            builder.sign(signer, "image/png", io.BytesIO(png), io.BytesIO())
    except c2pa.C2paError as exc:
        raise SigningError(f"the signing certificate or key was refused ({_short(exc)}); {_CERT_HELP}") from None
    finally:
        signer.close()


_CERT_HELP = ("C2PA needs the signing (end-entity, not CA) certificate first, then its issuing CA(s), in PEM; the "
              "signing certificate must have the digitalSignature key usage and the emailProtection or "
              "documentSigning extended key usage, match the private key and the algorithm, and should be issued "
              "by the studio's CA (not self-signed) so readers can trust it")


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:400] + ("…" if len(text) > 400 else "")


def verify_file(path: str | os.PathLike, trust_anchors: str | bytes | os.PathLike | None = None) -> C2paVerdict:
    """Read and verify a file's Content Credentials, offline.

    Args:
        path: the file; trust_anchors: PEM of the CA certificate(s) to trust (text, bytes or a file path). Without
            anchors the best state is ``Valid``; with them a signer chaining to one is ``Trusted``.

    Returns:
        a :class:`C2paVerdict` (``present`` False when the file has no manifest or C2PA does not read its format).

    Raises:
        InputNotFoundError: no such file.
    """
    import c2pa

    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"{p}: the file does not exist")
    mime = SIGNABLE.get(p.suffix.lower())
    if mime is None:
        return C2paVerdict(present=False)
    settings: dict[str, Any] = json.loads(json.dumps(_OFFLINE))
    if trust_anchors is not None:
        settings["verify"]["verify_trust"] = True
        settings["trust"] = {"user_anchors": _pem(trust_anchors, "trust anchor")}
    try:
        context = c2pa.Context.from_dict(settings)
    except c2pa.C2paError as exc:
        raise SigningError(f"the trust anchors were refused ({_short(exc)})") from None
    try:
        with open(p, "rb") as fh:
            try:
                reader = c2pa.Reader(mime, fh, None, context)
            except c2pa.C2paError.ManifestNotFound:
                return C2paVerdict(present=False)
            except c2pa.C2paError as exc:
                # a manifest C2PA cannot even parse (e.g. the manifest bytes were altered)
                return C2paVerdict(present=True, state="Invalid", failures=(("manifest.unreadable", _short(exc)),))
            with reader:
                return _verdict(reader)
    finally:
        context.close()


def _verdict(reader) -> C2paVerdict:
    state = reader.get_validation_state()
    results = reader.get_validation_results() or {}
    failures = []
    for section in results.values():
        if isinstance(section, dict):
            failures += [(str(f.get("code")), str(f.get("explanation", ""))) for f in section.get("failure", ())]
    manifest = reader.get_active_manifest() or {}
    record, actions = None, []
    for assertion in manifest.get("assertions", ()):
        label = assertion.get("label", "")
        if label == ASSERTION_LABEL:
            try:
                record = EditRecord.from_dict(assertion.get("data") or {})
            except ProvenanceError:
                failures.append(("ned_fx.record.malformed", "the ned_fx edit assertion is malformed"))
        elif label.startswith("c2pa.actions"):
            actions += [str(a.get("action")) for a in (assertion.get("data") or {}).get("actions", ())]
    sig = manifest.get("signature_info") or {}
    if state is None:
        state = "Invalid" if failures else "Valid"
    return C2paVerdict(present=True, state=state, failures=tuple(failures), signer=sig.get("common_name"),
                       issuer=sig.get("issuer"), record=record, actions=tuple(actions), time=sig.get("time"),
                       detail={"validation_results": results})
