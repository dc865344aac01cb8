"""The wire protocol: round trips, strict decoding, fuzzing, and that the client loads without torch."""

from __future__ import annotations

import subprocess
import sys

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ned_fx import protocol as P

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def _header(**kw) -> bytes:
    return msgpack.packb({"v": P.PROTOCOL_VERSION, "type": "ping", "id": 1, **kw}, use_bin_type=True)


@pytest.mark.parametrize("dtype", P.DTYPES)
def test_round_trip_every_dtype_without_copy(dtype):
    arr = (np.arange(6 * 5 * 4) % 200).astype(dtype).reshape(6, 5, 4)
    spec = P.BufferSpec.for_array(arr, row_order="bottom_up", colorspace="ACEScg", data_window=(10, 20, 14, 25),
                                  display_window=(0, 0, 99, 99))
    parts = P.encode("render", 7, session="abc", frame=1001, params={"x": 1}, arrays=[(arr, spec)])
    assert isinstance(parts[1], memoryview) and np.shares_memory(np.frombuffer(parts[1], np.uint8), arr)
    msg = P.decode(parts)
    assert (msg.type, msg.id, msg.session, msg.frame, msg.params) == ("render", 7, "abc", 1001, {"x": 1})
    assert msg.specs[0] == spec
    np.testing.assert_array_equal(msg.arrays[0], arr)
    assert msg.arrays[0].dtype == np.dtype(dtype)


def test_reply_and_error_round_trip():
    msg = P.decode(P.encode("reply", 3, result={"a": [1, 2]}), request=False)
    assert msg.result == {"a": [1, 2]}
    err = P.decode(P.error_reply(4, "not_found", "no such file /x"), request=False)
    assert err.type == "error" and err.error == {"code": "not_found", "message": "no such file /x"}
    with pytest.raises(P.ProtocolError):       # a reply is not a request
        P.decode(P.encode("reply", 3, result={}))


@pytest.mark.parametrize("parts, code", [
    ([], "bad_message"),
    ([b"\xc1"], "bad_message"),                                                     # invalid msgpack
    ([msgpack.packb([1, 2])], "bad_message"),                                       # not a map
    ([_header(type="exec")], "unknown_type"),
    ([_header(v=2)], "version_mismatch"),
    ([_header(evil=1)], "bad_message"),                                             # unknown key
    ([_header(id="1")], "bad_message"),                                             # wrong type
    ([_header(id=True)], "bad_message"),
    ([msgpack.packb({"v": 1, "type": "ping", "params": {"x": msgpack.ExtType(1, b"code")}})], "bad_message"),
    ([msgpack.packb({"v": 1, "type": "ping", "params": {"x": b"bytes"}}, use_bin_type=True)], "bad_message"),
    ([msgpack.packb({"v": 1, "type": "ping", "params": {1: 2}})], "bad_message"),  # non-string map key
    ([b"\x81" + msgpack.packb("v") + msgpack.packb("x" * 70000)], "bad_message"),  # header too big
    ([_header(), b"stray buffer"], "bad_message"),
])
def test_strict_decoding(parts, code):
    with pytest.raises(P.ProtocolError) as info:
        P.decode(parts)
    assert info.value.code == code
    assert str(info.value)


def _buf(**kw):
    return {"dtype": "float16", "shape": [4, 4, 4], "channels": ["R", "G", "B", "A"], **kw}


@pytest.mark.parametrize("spec, nbytes, words", [
    (_buf(), 127, "needs 128"),                                   # size does not match the shape
    (_buf(shape=[1 << 20, 1 << 20, 4]), 0, "out of range"),       # absurd shape
    (_buf(shape=[0, 4, 4]), 0, "out of range"),
    (_buf(shape=[30000, 30000, 16], dtype="float32"), 0, "limit"),
    (_buf(shape=[4, 4]), 0, "shape"),
    (_buf(dtype="object"), 0, "dtype"),
    (_buf(dtype="float64"), 0, "dtype"),
    (_buf(channels=["R", "R", "B", "A"]), 128, "unique"),
    (_buf(row_order="sideways"), 128, "row_order"),
    (_buf(data_window=[0, 0, 9, 9]), 128, "data window"),
    (_buf(data_window=[5, 0, 1, 3]), 128, "window"),
    (_buf(pickle=True), 128, "unknown key"),
    (_buf(shm="../../etc/passwd"), 0, "shared-memory name"),
    (_buf(shm="ned_fx-" + "a" * 32), 128, "inline buffer"),      # an shm buffer sends no part
])
def test_bad_buffers(spec, nbytes, words):
    with pytest.raises(P.ProtocolError) as info:
        P.decode([_header(type="render", buffers=[spec]), b"\0" * nbytes])
    assert words in str(info.value)


# -- fuzzing: whatever arrives, decode answers a Message or a ProtocolError, nothing else ------------------------

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=20),
                     st.binary(max_size=20))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                       max_leaves=12)
_keys = st.sampled_from(["v", "type", "id", "session", "frame", "params", "buffers", "x"])


def _packable(value) -> bytes:
    try:
        return msgpack.packb(value, use_bin_type=True)
    except (OverflowError, ValueError, TypeError):
        return b"\xc0"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _values, max_size=7), st.lists(st.binary(max_size=64), max_size=3))
def test_fuzzed_headers_only_raise_protocol_errors(header, buffers):
    try:
        P.decode([_packable(header), *buffers])
    except P.ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.lists(st.binary(max_size=64), max_size=2))
def test_fuzzed_bytes_only_raise_protocol_errors(raw, buffers):
    try:
        P.decode([raw, *buffers])
    except P.ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({"dtype": st.sampled_from(P.DTYPES + ("int8", "x")),
                              "shape": st.lists(st.integers(-3, 70000), min_size=0, max_size=4),
                              "channels": st.lists(st.text(max_size=3), max_size=5)}),
       st.integers(0, 400))
def test_fuzzed_buffer_specs(spec, nbytes):
    try:
        msg = P.decode([_header(type="render", buffers=[spec]), b"\0" * nbytes])
    except P.ProtocolError:
        return
    assert msg.arrays[0].nbytes == nbytes and list(msg.arrays[0].shape) == spec["shape"]


def test_shared_memory_buffer_sends_only_the_header(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "SHM_DIR", str(tmp_path))
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    spec = P.BufferSpec.for_array(arr)
    spec = P.BufferSpec(**{**spec.__dict__, "shm": "ned_fx-" + "b" * 32})
    buf = P.attach_shm(spec, create=True)
    buf[...] = arr
    parts = P.encode("render", 1, session="s", frame=0, arrays=[(buf, spec)])
    assert len(parts) == 1
    msg = P.decode(parts)
    assert msg.arrays == [None] and msg.specs[0].shm == spec.shm
    np.testing.assert_array_equal(P.attach_shm(msg.specs[0]), arr)
    with pytest.raises(P.ProtocolError):      # wrong size for the declared shape
        P.attach_shm(P.BufferSpec("float32", (2, 3, 5), tuple("RGBAZ"), shm=spec.shm))
    link = tmp_path / ("ned_fx-" + "c" * 32)
    link.symlink_to(tmp_path / spec.shm)
    with pytest.raises(P.ProtocolError):      # symlinks are refused
        P.attach_shm(P.BufferSpec("float32", (2, 3, 4), tuple("RGBA"), shm=link.name))


def test_descriptors():
    d = P.double("intensity", 0, 1.5, 1.0)
    assert d["kind"] == "double" and d["min"] == 0 and d["max"] == 1.5 and d["default"] == 1.0
    assert P.choice("e", ["a", "b"], "a")["options"] == ["a", "b"]
    assert P.boolean("b", True)["kind"] == "boolean" and P.clip("Source", ["RGBA"])["kind"] == "clip"


def test_protocol_and_client_import_without_torch():
    """Hosts' Pythons have no torch: the client must load (and protocol must never pull it in)."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "import ned_fx.client, ned_fx.protocol\n"
            "heavy = [m for m in ('torch', 'cv2', 'av', 'scipy', 'ned_fx.pipeline', 'ned_fx.tracking') "
            "if sys.modules.get(m) is not None]\n"
            "assert not heavy, heavy\nprint('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_a_render_reply_with_the_matte_round_trips():
    """A reply carrying the frame and the matte (``ned.matte``, (H, W, 1) float32, the frame's row order and
    windows) decodes to both arrays; the hosts name the matte channel as the protocol does."""
    from ned_fx.hosts.frames import MATTE_CHANNEL

    assert P.MATTE_CHANNEL == MATTE_CHANNEL == "ned.matte" and P.RENDER_PARAMS == {"matte": bool}
    frame = np.arange(4 * 6 * 3, dtype=np.uint16).reshape(4, 6, 3)
    matte = np.linspace(0, 1, 24, dtype=np.float32).reshape(4, 6, 1)
    window = (2, 3, 7, 6)
    specs = [P.BufferSpec.for_array(frame, row_order="bottom_up", data_window=window),
             P.BufferSpec.for_array(matte, (P.MATTE_CHANNEL,), "bottom_up", data_window=window)]
    back = P.decode(P.encode("reply", 9, result={"reason": None}, arrays=list(zip([frame, matte], specs))),
                    request=False)
    assert [s.channels for s in back.specs] == [("R", "G", "B"), ("ned.matte",)]
    assert back.specs[1].data_window == window and back.specs[1].row_order == "bottom_up"
    assert np.array_equal(back.arrays[0], frame) and np.array_equal(back.arrays[1], matte)
    request = P.decode(P.encode("render", 1, session="s", frame=3, params={"matte": True}))
    assert request.params == {"matte": True}
