"""Provenance (issue 9): every format the product writes carries the edit record and reads it back, other readers
(OpenCV, tifffile, OpenEXR, PyAV, Pillow) see the same pixels as without it, ``ned-fx provenance`` prints it with
distinct exit codes, and C2PA-signed stills and movies verify while a modified one fails."""

from __future__ import annotations

import datetime
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from conftest import decode_rgb, footage
from ned_fx.cli import main
from ned_fx.errors import InvalidParameterError, UnsupportedFormatError
from ned_fx.media import Frame, MovieWriter, read_image, write_image
from ned_fx.media.readers import read_provenance
from ned_fx.provenance import EditRecord, ProvenanceError, SigningError, build_record, file_sha256, sentence
from ned_fx.provenance import embed
from ned_fx.provenance.c2pa import check_signer, sign_file, verify_file


@pytest.fixture(scope="module")
def record():
    src = footage("d19.jpg")
    shot = build_record(src, {"emotion": "happy", "intensity": 0.8, "regions": "brows,eyes", "speech": "auto"},
                        face_id=0, consent="REL-2231 (J. Doe)", application="tests")
    return shot.for_frame(0)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return decode_rgb("d19.jpg")[0][0]


# ---- the record ---------------------------------------------------------------------------------------------------

def test_record_says_what_was_edited_and_round_trips(record):
    d = record.to_dict()
    assert d["schema"] == "ned_fx.edit/1" and d["tool"] == "ned_fx" and d["edited"] is True
    assert record.summary == ("The facial expression in this image was edited with ned_fx "
                              f"{record.version} (emotion happy, intensity 0.8, regions brows,eyes).")
    assert d["source"] == "d19.jpg" and d["source_frame"] == 0 and d["renderer"] == "geometry"
    assert d["source_sha256"] == file_sha256(footage("d19.jpg"))
    assert datetime.datetime.fromisoformat(d["time"].replace("Z", "+00:00")).tzinfo is not None
    assert EditRecord.from_dict(d) == record and EditRecord.from_json(record.to_json()) == record
    assert json.loads(record.to_json()) == d and record.to_json().isascii()
    passed = record.for_frame(12, source_sha256="ab" * 32, passed_through="no face")
    assert passed.edited is False and "passed through unchanged: no face" in passed.summary
    keyed = EditRecord(version="1", keys="0:neutral:0,24:happy:1", intensity=1.0)
    assert "keyframes 0:neutral:0,24:happy:1" in sentence(keyed) and "intensity" not in sentence(keyed)
    # a newer minor schema with a field we do not know still reads
    assert EditRecord.from_dict({**d, "schema": "ned_fx.edit/1.3", "new_field": 1}).emotion == "happy"


@pytest.mark.parametrize("bad, match", [
    ({"schema": "other/1"}, "not a ned_fx edit record"),
    ({"schema": "ned_fx.edit/2"}, "newer"),
    ({"schema": "ned_fx.edit/1", "intensity": "high"}, "intensity"),
    ({"schema": "ned_fx.edit/1", "edited": 1}, "edited"),
    ([1, 2], "JSON object"),
])
def test_malformed_records_are_named_errors(bad, match):
    with pytest.raises(ProvenanceError, match=match):
        EditRecord.from_dict(bad)
    with pytest.raises(ProvenanceError, match="JSON"):
        EditRecord.from_json("{not json")


# ---- every still format: round trip, same pixels for other readers ------------------------------------------------

def _other_reader(path: Path) -> np.ndarray:
    """The pixels as an ordinary reader (not ours) sees them."""
    ext = path.suffix.lower()
    if ext == ".exr":
        import OpenEXR

        with OpenEXR.File(str(path)) as exr:
            return np.stack([c.pixels for _, c in sorted(exr.channels().items())], axis=-1)
    if ext in (".tif", ".tiff"):
        import tifffile

        return tifffile.imread(str(path))
    import cv2

    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


STILLS = {
    "exr-half": (".exr", lambda rgb: (rgb / 255.0).astype(np.float16)),
    "exr-float": (".exr", lambda rgb: (rgb / 255.0 * 4.0).astype(np.float32)),     # above 1: scene-linear
    "png-8": (".png", lambda rgb: rgb),
    "png-16": (".png", lambda rgb: rgb.astype(np.uint16) * 257),
    "tiff-8": (".tif", lambda rgb: rgb),
    "tiff-16": (".tif", lambda rgb: rgb.astype(np.uint16) * 257),
    "tiff-float": (".tiff", lambda rgb: (rgb / 255.0).astype(np.float32)),
    "jpeg": (".jpg", lambda rgb: rgb),
}


@pytest.mark.parametrize("kind", list(STILLS))
def test_still_round_trip_keeps_pixels_for_other_readers(kind, tmp_path, photo, record):
    ext, convert = STILLS[kind]
    pixels = convert(photo)
    alpha = np.full(pixels.shape[:2] + (1,), pixels.max(), pixels.dtype)
    frame = Frame(number=0, pixels=np.concatenate([pixels, alpha], axis=-1), channels=("R", "G", "B", "A"),
                  metadata={"owner": "Studio X", "comments": "plate from set"} if ext == ".exr" else {})
    plain, stamped = tmp_path / f"plain{ext}", tmp_path / f"stamped{ext}"
    write_image(plain, frame)
    write_image(stamped, frame, provenance=record)
    assert read_provenance(stamped) == record
    assert read_provenance(plain) is None
    a, b = _other_reader(plain), _other_reader(stamped)
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(read_image(plain).pixels, read_image(stamped).pixels)
    if ext == ".exr":
        header = read_image(stamped).metadata
        assert header["owner"] == "Studio X"                       # the plate's own attributes stay
        assert header["comments"] == f"plate from set\n{record.summary}"
        assert header["ned_fx/emotion"] == "happy" and header["ned_fx/edited"] == "true"
    elif ext in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(stamped) as tif:
            tags = tif.pages[0].tags
            assert tags["ImageDescription"].value == record.summary and tags["Software"].value.startswith("ned_fx")
            assert b"compositeWithTrainedAlgorithmicMedia" in tags["XMP"].value
    else:
        from PIL import Image

        with Image.open(stamped) as im:                            # a reader that knows nothing of ned_fx
            if ext == ".png":
                assert im.text["Description"] == record.summary and im.text["Software"].startswith("ned_fx")
            else:
                assert im.info["comment"].decode() == record.summary
                assert "compositeWithTrainedAlgorithmicMedia" in im.info["xmp"].decode()


def test_bmp_has_no_metadata_and_refuses_provenance(tmp_path, photo, record):
    with pytest.raises(InvalidParameterError, match=r"\.bmp files have no metadata.*valid: .*\.png"):
        write_image(tmp_path / "x.bmp", photo, provenance=record)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ProvenanceError):
        write_image(tmp_path / "x.png", photo, provenance={"schema": "nope"})
    assert read_provenance(write_image(tmp_path / "y.bmp", photo)) is None


def test_a_png_record_survives_other_chunks_and_damage_is_reported(tmp_path, photo, record):
    path = write_image(tmp_path / "a.png", photo, provenance=record)
    data = path.read_bytes()
    text = embed.png_text(data)
    assert text[embed.PNG_KEYWORD] == record.to_json()
    assert embed.record_from_xmp(text["XML:com.adobe.xmp"].encode()) == record
    # a chunk with a broken CRC is ignored, not trusted: flip a byte inside the JSON chunk
    at = data.index(b"ned_fx:provenance") + 40
    damaged = data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]
    assert embed.record_from_png(damaged) == record            # read from the intact XMP copy instead
    with pytest.raises(ProvenanceError, match="not a PNG"):
        embed.record_from_png(b"GIF89a")


def test_dpx_user_data_carries_the_record(tmp_path, photo, record):
    oiio = pytest.importorskip("OpenImageIO")
    attrs = embed.dpx_attributes(record)
    paths = {}
    for name, extra in (("plain", {}), ("stamped", attrs)):
        spec = oiio.ImageSpec(photo.shape[1], photo.shape[0], 3, oiio.UINT16)
        spec.attribute("oiio:BitsPerSample", 10)
        for key, value in extra.items():
            if isinstance(value, bytes):
                spec.attribute(key, oiio.TypeDesc(f"uint8[{len(value)}]"), np.frombuffer(value, np.uint8))
            else:
                spec.attribute(key, value)
        paths[name] = tmp_path / f"{name}.dpx"
        out = oiio.ImageOutput.create(str(paths[name]))
        assert out.open(str(paths[name]), spec) and out.write_image(photo.astype(np.uint16) * 257)
        out.close()
    assert read_provenance(paths["stamped"]) == record and read_provenance(paths["plain"]) is None
    a, b = (oiio.ImageBuf(str(paths[n])).get_pixels(oiio.UINT16) for n in ("plain", "stamped"))
    np.testing.assert_array_equal(a, b)


# ---- movies -------------------------------------------------------------------------------------------------------

MOVIES = {"mp4": (".mp4", "libx264"), "mov": (".mov", "libx264"), "mkv": (".mkv", "libx264"),
          "avi": (".avi", "mpeg4")}


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    frames, _ = decode_rgb("d12.mp4")
    return [frames[i] for i in range(3)]


@pytest.mark.parametrize("kind", list(MOVIES))
def test_movie_round_trip_keeps_frames_and_audio(kind, tmp_path, clip):
    import av

    ext, codec = MOVIES[kind]
    rec = build_record(footage("d12.mp4"), {"emotion": "sad", "intensity": 0.6}, face_id=0, frames="0-2",
                       kind="video", consent="REL-9")
    audio = footage("d12.mp4") if ext != ".avi" else None
    outs = {}
    for name, prov in (("plain", None), ("stamped", rec)):
        with MovieWriter(tmp_path / f"{name}{ext}", 25, 512, 512, codec=codec, provenance=prov,
                         audio_from=audio, audio_range=(0.0, 0.12)) as w:
            for f in clip:
                w.write(f)
        outs[name] = tmp_path / f"{name}{ext}"
    assert read_provenance(outs["stamped"]) == rec and read_provenance(outs["plain"]) is None
    decoded = {}
    for name, path in outs.items():
        with av.open(str(path)) as c:
            decoded[name] = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
            meta = {k.lower(): v for k, v in c.metadata.items()}
            streams = sorted(s.type for s in c.streams)
        assert streams == (["audio", "video"] if audio else ["video"])
        if name == "stamped":
            assert meta["comment"] == rec.summary and "video was edited" in rec.summary
    assert len(decoded["plain"]) == len(decoded["stamped"]) == 3
    for a, b in zip(decoded["plain"], decoded["stamped"]):
        np.testing.assert_array_equal(a, b)


# ---- ned-fx provenance ----------------------------------------------------------------------------------------------

def test_cli_prints_the_edit_and_exit_codes(tmp_path, photo, record, capsys):
    stamped = write_image(tmp_path / "shot_happy.exr", (photo / 255.0).astype(np.float16), provenance=record)
    plain = write_image(tmp_path / "plain.png", photo)
    assert main(["provenance", str(stamped)]) == 0
    out = capsys.readouterr().out
    assert "edited: yes" in out and record.summary in out and "emotion happy, intensity 0.8" in out
    assert "d19.jpg frame 0" in out and record.source_sha256 in out and "REL-2231 (J. Doe)" in out
    assert "EXR header attributes" in out
    assert main(["provenance", str(plain)]) == 10
    assert "carries no ned_fx provenance" in capsys.readouterr().out
    assert main(["provenance", str(stamped), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["provenance"] == record.to_dict() and doc["edited"] is True and doc["c2pa"] is None
    assert main(["provenance", str(tmp_path / "missing.exr")]) == 2
    # a sequence: every frame file is checked
    for n in (1001, 1002):
        write_image(tmp_path / f"seq.{n}.png", photo, provenance=record.for_frame(n))
    write_image(tmp_path / "seq.1003.png", photo)
    assert main(["provenance", str(tmp_path / "seq.####.png")]) == 10
    out = capsys.readouterr().out
    assert "2 of 3 frame file(s) carry ned_fx provenance" in out and "seq.1003.png" in out


# ---- C2PA ---------------------------------------------------------------------------------------------------------

def _certificates(folder: Path, self_signed: bool = False) -> tuple[Path, Path, Path]:
    """A studio CA and a signing certificate (ES256, emailProtection) issued by it, made here."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Studio")])

    def usage(**on):
        flags = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                               "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"),
                              False)
        return x509.KeyUsage(**{**flags, **on})

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("Test Studio Root CA")).issuer_name(name("Test Studio Root CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    issuer, signing_key = (name("Test Studio ned_fx signer"), key) if self_signed else (ca.subject, ca_key)
    leaf = (x509.CertificateBuilder().subject_name(name("Test Studio ned_fx signer")).issuer_name(issuer)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                (key if self_signed else ca_key).public_key()), critical=False)
            .sign(signing_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    chain, key_file, ca_file = folder / "chain.pem", folder / "signer.key", folder / "ca.pem"
    chain.write_bytes(leaf.public_bytes(pem) + (b"" if self_signed else ca.public_bytes(pem)))
    key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    ca_file.write_bytes(ca.public_bytes(pem))
    return chain, key_file, ca_file


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return _certificates(tmp_path_factory.mktemp("certs"))


def _png_with_one_pixel_changed(data: bytes) -> bytes:
    """The same PNG (valid, CRCs right) with one byte of one pixel changed: the last byte of the image data,
    which no later byte's filter depends on."""
    pos, idat, before, after = 8, b"", None, None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if kind == b"IDAT":
            before = pos if before is None else before
            idat += data[pos + 8:pos + 8 + length]
            after = end
        pos = end
    raw = bytearray(zlib.decompress(idat))
    raw[-1] ^= 0x01
    body = zlib.compress(bytes(raw))
    chunk = struct.pack(">I", len(body)) + b"IDAT" + body + struct.pack(">I", zlib.crc32(b"IDAT" + body))
    return data[:before] + chunk + data[after:]


def test_signed_png_verifies_and_one_changed_pixel_fails(tmp_path, photo, record, certs, capsys):
    import cv2

    chain, key, ca = certs
    delivered = write_image(tmp_path / "delivered.png", photo, provenance=record)
    before = delivered.read_bytes()
    signed = sign_file(delivered, tmp_path / "signed.png", chain, key, record)
    assert delivered.read_bytes() == before                        # the input is never touched
    verdict = verify_file(signed)
    assert verdict.present and verdict.valid and not verdict.trusted and verdict.state == "Valid"
    assert verdict.integrity_failures == () and verdict.record == record
    assert verdict.actions == ("c2pa.opened", "c2pa.edited") and verdict.signer == "Test Studio ned_fx signer"
    assert verify_file(signed, trust_anchors=ca).trusted                 # chained to the studio's own CA
    assert read_provenance(signed) == record                             # the embedded record is still there
    np.testing.assert_array_equal(cv2.imread(str(signed), -1), cv2.imread(str(delivered), -1))
    assert main(["provenance", str(signed), "--trust", str(ca)]) == 0
    assert "content credentials (C2PA): trusted" in capsys.readouterr().out

    tampered = tmp_path / "tampered.png"
    tampered.write_bytes(_png_with_one_pixel_changed(signed.read_bytes()))
    a, b = cv2.imread(str(signed), -1), cv2.imread(str(tampered), -1)
    assert (a != b).sum() == 1                                           # exactly one byte of one pixel
    bad = verify_file(tampered)
    assert bad.present and not bad.valid and bad.state == "Invalid"
    assert any("hash" in code.lower() and "mismatch" in code for code, _ in bad.integrity_failures)
    assert main(["provenance", str(tampered)]) == 11
    out = capsys.readouterr().out
    assert "INVALID" in out and "mismatch" in out and "edited: yes" in out
    assert not verify_file(delivered).present                            # unsigned: no manifest at all


def test_signed_jpeg_and_movie_verify_and_fail_when_modified(tmp_path, photo, record, certs, clip):
    chain, key, _ = certs
    jpeg = write_image(tmp_path / "still.jpg", photo, provenance=record)
    signed = sign_file(jpeg, tmp_path / "still_signed.jpg", chain, key, record)
    assert verify_file(signed).valid and verify_file(signed).record == record
    data = bytearray(signed.read_bytes())
    scan = data.rindex(b"\xff\xda")                     # the last start of scan: change one byte of its data
    at = next(i for i in range(scan + 600, len(data)) if data[i] not in (0x00, 0xFE, 0xFF))
    data[at] ^= 0x01
    (tmp_path / "still_bad.jpg").write_bytes(bytes(data))
    assert not verify_file(tmp_path / "still_bad.jpg").valid

    rec = build_record(footage("d12.mp4"), {"emotion": "sad"}, frames="0-2", kind="video")
    with MovieWriter(tmp_path / "shot.mp4", 25, 512, 512, provenance=rec) as w:
        for f in clip:
            w.write(f)
    movie = sign_file(tmp_path / "shot.mp4", tmp_path / "shot.mp4", chain, key, rec)     # in place, atomically
    verdict = verify_file(movie)
    assert verdict.valid and verdict.record == rec and read_provenance(movie) == rec
    data = bytearray(movie.read_bytes())
    at = data.index(b"mdat") + 200
    data[at] ^= 0x01
    (tmp_path / "bad.mp4").write_bytes(bytes(data))
    bad = verify_file(tmp_path / "bad.mp4")
    assert not bad.valid and any("mismatch" in code for code, _ in bad.integrity_failures)


def test_signing_refuses_what_c2pa_cannot_accept(tmp_path, photo, record, certs):
    chain, key, ca = certs
    exr = write_image(tmp_path / "a.exr", (photo / 255.0).astype(np.float16), provenance=record)
    with pytest.raises(UnsupportedFormatError, match=r"\.png"):
        sign_file(exr, tmp_path / "b.exr", chain, key, record)
    png = write_image(tmp_path / "a.png", photo, provenance=record)
    with pytest.raises(SigningError, match="self-signed.*end-entity, not CA"):      # the CA itself as the signer
        sign_file(png, tmp_path / "b.png", ca, key, record)
    (tmp_path / "other").mkdir()
    _, other_key, _ = _certificates(tmp_path / "other")
    with pytest.raises(SigningError, match="does not match.*match the private key"):
        sign_file(png, tmp_path / "b.png", chain, other_key, record)
    (tmp_path / "self").mkdir()
    own_chain, own_key, _ = _certificates(tmp_path / "self", self_signed=True)
    own = verify_file(sign_file(png, tmp_path / "own.png", own_chain, own_key, record), trust_anchors=ca)
    assert own.valid and not own.trusted            # signs, but does not chain to the studio's CA
    with pytest.raises(SigningError, match="PEM"):
        sign_file(png, tmp_path / "b.png", png, key, record)
    with pytest.raises(SigningError, match="es256"):
        sign_file(png, tmp_path / "b.png", chain, key, record, alg="md5")
    check_signer(chain, key)                                              # good credentials pass the dry run
    with pytest.raises(SigningError, match="does not match"):
        check_signer(chain, other_key)
    with pytest.raises(SigningError, match="(?i)es384"):                # an ES256 key declared as ES384
        check_signer(chain, key, "es384")
    assert not (tmp_path / "b.png").exists() and not list(tmp_path.glob(".*tmp*"))   # nothing half-written


# ---- ned-fx edit: every output stamped, signed on request, audited --------------------------------------------------

def test_edit_stamps_signs_and_audits_a_still(tmp_path, certs, capsys):
    from ned_fx.provenance import read_audit_log

    chain, key, ca = certs
    out, preview, log = tmp_path / "p.png", tmp_path / "ba.jpg", tmp_path / "audit.jsonl"
    code = main(["edit", str(footage("people_0.png")), "-o", str(out), "--emotion", "sad", "--intensity", "0.7",
                 "--preview", str(preview), "--consent", "REL-77", "--sign-cert", str(chain), "--sign-key", str(key),
                 "--audit-log", str(log), "-q"])
    text = capsys.readouterr().out
    assert code == 0 and "signed: C2PA Content Credentials" in text and str(log) in text
    rec = read_provenance(out)
    assert rec.edited and rec.emotion == "sad" and rec.intensity == 0.7 and rec.consent == "REL-77"
    assert rec.source == "people_0.png" and rec.source_sha256 == file_sha256(footage("people_0.png"))
    assert rec.application == "ned-fx edit" and rec.renderer == "geometry" and rec.face_id is not None
    verdict = verify_file(out, trust_anchors=ca)
    assert verdict.trusted and verdict.record == rec
    assert read_provenance(preview).consent == "REL-77"            # the before/after says so too
    (line,) = read_audit_log(log)
    assert line["event"] == "edit" and line["status"] == "done" and line["consent"] == "REL-77"
    assert line["params"] == {"emotion": "sad", "intensity": 0.7} and line["signed"] is True
    assert {o["path"]: o["sha256"] for o in line["outputs"]} == {str(out): file_sha256(out),
                                                                 str(preview): file_sha256(preview)}
    assert line["who"]["application"] == "ned-fx edit" and line["edited"] == 1
    # outputs that cannot carry provenance, or cannot be signed, are refused before any work
    assert main(["edit", str(footage("people_0.png")), "-o", str(tmp_path / "p.bmp"), "--emotion", "sad",
                 "--no-audit-log", "-q"]) == 2
    assert "no metadata" in capsys.readouterr().err
    assert main(["edit", str(footage("people_0.png")), "-o", str(tmp_path / "p.exr"), "--emotion", "sad",
                 "--sign-cert", str(chain), "--sign-key", str(key), "--no-audit-log", "-q"]) == 2
    assert "C2PA" in capsys.readouterr().err and not (tmp_path / "p.exr").exists()
    assert main(["edit", str(footage("people_0.png")), "-o", str(tmp_path / "q.png"), "--emotion", "sad",
                 "--sign-cert", str(chain), "--no-audit-log", "-q"]) == 2
    assert "--sign-key" in capsys.readouterr().err
    assert main(["edit", str(footage("people_0.png")), "-o", str(tmp_path / "q.png"), "--emotion", "sad",
                 "--sign-cert", str(ca), "--sign-key", str(key), "--audit-log", str(log), "-q"]) == 2
    assert "self-signed" in capsys.readouterr().err and not (tmp_path / "q.png").exists()
    assert len(read_audit_log(log)) == 1                                 # refused before any work


def test_edit_of_a_sequence_stamps_each_frame_with_its_own_source(tmp_path, monkeypatch):
    from ned_fx.pipeline import EditInstruction, edit_media
    from ned_fx.provenance import AuditLog, read_audit_log

    rgb = decode_rgb("d12.mp4")[0][:3].copy()
    rgb[1] = 0                                                       # no face: passed through, and says so
    for i, pic in enumerate(rgb):
        write_image(tmp_path / f"s.{1001 + i}.png", pic)
    log = AuditLog(tmp_path / "audit.jsonl", application="tests")
    analysis = tmp_path / "shot.analysis.npz"
    import ned_fx.media
    from ned_fx.errors import OutputWriteError

    def full_disk(*args, **kwargs):
        raise OutputWriteError("could not write the frame: No space left on device")

    with monkeypatch.context() as m:                                     # a render that fails: audited as failed
        m.setattr(ned_fx.media, "write_image", full_disk)
        with pytest.raises(OutputWriteError, match="No space left"):
            edit_media(tmp_path / "s.####.png", tmp_path / "bad" / "e.####.exr", EditInstruction(emotion="happy"),
                       consent="REL-5", audit=log, analysis=analysis)
    (failed,) = read_audit_log(log.path)
    assert failed["status"] == "failed" and "No space left" in failed["error"] and failed["outputs"] == []
    summary = edit_media(tmp_path / "s.####.png", tmp_path / "o" / "e.####.tif", EditInstruction(emotion="happy"),
                         consent="REL-5", audit=log, analysis=analysis)
    assert summary.edited == (1001, 1003) and summary.passed_through == {1002: "no face"}
    for n in (1001, 1002, 1003):
        rec = read_provenance(tmp_path / "o" / f"e.{n}.tif")
        assert rec.source == "s.####.png" and rec.source_frame == n and rec.frames == "1001-1003"
        assert rec.source_sha256 == file_sha256(tmp_path / f"s.{n}.png")
        assert rec.edited is (n != 1002) and rec.consent == "REL-5"
    assert "passed through unchanged: no face" in read_provenance(tmp_path / "o" / "e.1002.tif").summary
    line = read_audit_log(log.path)[1]
    assert [o["path"] for o in line["outputs"]] == [str(tmp_path / "o" / f"e.{n}.tif") for n in (1001, 1002, 1003)]
    assert line["edited"] == 2 and line["passed_through"] == 1 and line["status"] == "done"


def test_edit_of_a_movie_carries_the_shot_record_and_signs(tmp_path, certs):
    from ned_fx.pipeline import EditInstruction, edit_media

    chain, key, _ = certs
    out = tmp_path / "happy.mov"
    summary = edit_media(footage("d12.mp4"), out, EditInstruction(emotion="happy", intensity=0.8), frames="0-4",
                         sign=(chain, key))
    assert summary.signed and len(summary.edited) == 5 and summary.outputs[0]["sha256"] == file_sha256(out)
    rec = read_provenance(out)
    assert rec.kind == "video" and rec.frames == "0-4" and rec.source_frame is None
    assert rec.source_sha256 == file_sha256(footage("d12.mp4"))
    assert "video was edited" in rec.summary and verify_file(out).record == rec and verify_file(out).valid
