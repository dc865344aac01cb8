"""``ned-fx provenance``: what a file says about its edit, and whether its Content Credentials verify.

    ned-fx provenance shot_happy.mov
    ned-fx provenance out/shot_sad.####.exr            # every frame of a sequence
    ned-fx provenance delivery.jpg --trust studio_ca.pem --json

Exit status: 0 the file carries a ned_fx edit record (and its C2PA manifest, if any, verifies); 10 it carries
none; 11 a C2PA manifest is present but fails verification; other codes are errors (2 no such file …).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: Exit status: provenance found (and any C2PA manifest verifies).
EXIT_FOUND = 0
#: Exit status: the file carries no ned_fx provenance.
EXIT_NONE = 10
#: Exit status: a C2PA manifest is present and fails verification.
EXIT_C2PA_INVALID = 11

_WHERE = {".exr": "EXR header attributes", ".png": "PNG text chunks", ".jpg": "JPEG XMP segment",
          ".jpeg": "JPEG XMP segment", ".tif": "TIFF XMP tag", ".tiff": "TIFF XMP tag"}


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``provenance`` sub-command."""
    p = subparsers.add_parser("provenance", help="print what a file says about its edit (and verify its C2PA "
                              "Content Credentials)", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="an output of ned_fx: image, movie, or sequence pattern (shot.####.exr)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--trust", metavar="CA.pem",
                   help="PEM file of CA certificate(s) to trust: a C2PA signer chaining to one is reported trusted")
    p.set_defaults(func=run)
    return p


def inspect_file(path: Path, trust: str | None = None) -> dict:
    """Everything one file says: its embedded record, its C2PA verdict (formats C2PA reads), where it was found.

    Raises:
        InputNotFoundError, UnreadableMediaError, ProvenanceError: see :func:`ned_fx.media.readers.read_provenance`.
    """
    from ..media.readers import read_provenance

    record = read_provenance(path)
    where = _WHERE.get(path.suffix.lower(), "container tags") if record else None
    verdict = None
    from ..provenance.c2pa import SIGNABLE

    if path.suffix.lower() in SIGNABLE:
        from ..provenance.c2pa import verify_file

        verdict = verify_file(path, trust)
        if record is None and verdict.record is not None:
            record, where = verdict.record, "C2PA manifest"
    return {"file": str(path), "record": record, "where": where, "c2pa": verdict}


def run(args) -> int:
    from ..errors import InputNotFoundError
    from ..media import find_sequence_frames, is_sequence_pattern

    path = Path(args.file)
    if is_sequence_pattern(path) and not path.exists():
        files = list(find_sequence_frames(path).values())
    elif not path.exists():
        raise InputNotFoundError(f"{path}: the file does not exist")
    else:
        files = [path]
    found = [inspect_file(f, args.trust) for f in files]
    missing = [r["file"] for r in found if r["record"] is None]
    invalid = [r for r in found if r["c2pa"] is not None and r["c2pa"].present and not r["c2pa"].valid]
    if args.json:
        doc = [_as_json(r) for r in found]
        print(json.dumps(doc[0] if len(doc) == 1 else {"pattern": str(path), "files": doc}, indent=2))
    else:
        _print_text(path, found, missing)
    sys.stdout.flush()
    if invalid:
        return EXIT_C2PA_INVALID
    return EXIT_NONE if missing else EXIT_FOUND


def _as_json(r: dict) -> dict:
    return {"file": r["file"], "edited": None if r["record"] is None else r["record"].edited,
            "provenance": r["record"].to_dict() if r["record"] else None, "found_in": r["where"],
            "c2pa": r["c2pa"].to_dict() if r["c2pa"] is not None else None}


def _print_text(path: Path, found: list[dict], missing: list[str]) -> None:
    first = next((r for r in found if r["record"] is not None), None)
    if len(found) > 1:
        print(f"{path}: {len(found) - len(missing)} of {len(found)} frame file(s) carry ned_fx provenance")
        if missing:
            names = ", ".join(Path(m).name for m in missing[:10]) + (" …" if len(missing) > 10 else "")
            print(f"  without provenance: {names}")
    if first is None:
        print(f"{path}: carries no ned_fx provenance (it was not written by ned_fx, or its metadata was stripped)")
    else:
        _print_record(first)
    for r in found:
        if r["c2pa"] is not None and (r["c2pa"].present or len(found) == 1):
            _print_c2pa(r, len(found) > 1)


def _print_record(r: dict) -> None:
    rec = r["record"]
    state = "yes" if rec.edited else f"no (this frame was passed through unchanged: {rec.passed_through})"
    print(f"{r['file']}: edited: {state}")
    print(f"  {rec.summary}")
    print(f"  tool:        {rec.tool} {rec.version} (record {rec.schema}, in the {r['where']})")
    params = [f"{k} {getattr(rec, k)}" for k in ("emotion", "intensity", "keys", "curve", "regions", "speech",
                                                   "neutral_frame") if getattr(rec, k) is not None]
    if rec.reference:
        params.append(f"reference {rec.reference}" + (f" (sha256 {rec.reference_sha256})" if rec.reference_sha256
                                                      else ""))
    print(f"  parameters:  {', '.join(params) or 'none recorded'}")
    print(f"  face:        {'main face' if rec.face_id is None else rec.face_id}, renderer {rec.renderer}")
    where = rec.source or "unknown"
    if rec.source_frame is not None:
        where += f" frame {rec.source_frame}"
    elif rec.frames:
        where += f" frames {rec.frames}"
    print(f"  source:      {where}" + (f", sha256 {rec.source_sha256}" if rec.source_sha256 else ""))
    print(f"  time:        {rec.time or 'not recorded'}")
    print(f"  consent:     {rec.consent or 'none given'}")
    by = "@".join(x for x in (rec.user, rec.host) if x) or "not recorded"
    print(f"  by:          {by}" + (f" ({rec.application})" if rec.application else ""))


def _print_c2pa(r: dict, name: bool) -> None:
    v = r["c2pa"]
    label = f"  {Path(r['file']).name}: " if name else "  "
    if not v.present:
        print(f"{label}content credentials (C2PA): none")
        return
    who = f'signed by "{v.signer}"' + (f" ({v.issuer})" if v.issuer else "") if v.signer else "signer unknown"
    if v.trusted:
        print(f"{label}content credentials (C2PA): trusted, {who}")
    elif v.valid:
        untrusted = any(c.startswith("signingCredential.untrusted") for c, _ in v.failures)
        note = "; the signer is not in a given trust list (--trust CA.pem)" if untrusted else ""
        print(f"{label}content credentials (C2PA): valid, {who}{note}")
    else:
        print(f"{label}content credentials (C2PA): INVALID, {who}; the file was changed after signing or the "
              f"manifest is damaged:")
        for code, text in v.integrity_failures or v.failures:
            print(f"{label}  {code}: {text}")
