"""Consent (issue 9): the policy refuses and accepts as configured, in process and in a real daemon subprocess
(``--require-consent``), with a typed error that says how to pass a reference; the reference travels into the
session's provenance record and the audit log."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import footage
from daemons import Daemon
from ned_fx import protocol as P
from ned_fx.client import Client, DaemonError
from ned_fx.errors import InvalidParameterError, NedFxError
from ned_fx.provenance import ConsentPolicy, ConsentRequiredError, read_audit_log


# ---- the policy ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("missing", [None, "", "   \t "])
def test_required_policy_refuses_a_missing_reference_and_says_how_to_pass_one(missing):
    with pytest.raises(ConsentRequiredError) as err:
        ConsentPolicy(required=True).check(missing, "opening plate.####.exr")
    text = str(err.value)
    assert "plate.####.exr" in text and "--consent" in text and "consent=" in text
    assert isinstance(err.value, NedFxError) and err.value.exit_code == 9


def test_optional_policy_accepts_none_and_both_keep_a_given_reference():
    assert ConsentPolicy().check(None) is None and ConsentPolicy(required=False).check("  ") is None
    for policy in (ConsentPolicy(), ConsentPolicy(required=True)):
        assert policy.check("  REL-2231 (Jane Doe, 2026-02-01)  ") == "REL-2231 (Jane Doe, 2026-02-01)"
        assert policy.check("Zustimmung Nr. 7 – élan") == "Zustimmung Nr. 7 – élan"


@pytest.mark.parametrize("bad", ["REL-1\nREL-2", "tab\there", "nul\x00", "x" * 501])
def test_malformed_references_are_refused_by_every_policy(bad):
    for policy in (ConsentPolicy(), ConsentPolicy(required=True)):
        with pytest.raises(InvalidParameterError):
            policy.check(bad)


def test_the_wire_error_code_exists():
    assert "consent_required" in P.ERROR_CODES
    assert P.decode(P.error_reply(3, "consent_required", "m"), request=False).error["code"] == "consent_required"


# ---- a real daemon ---------------------------------------------------------------------------------------------------

@pytest.fixture
def strict(tmp_path):
    d = Daemon("--engine", "identity", "--require-consent", "--audit-log", str(tmp_path / "audit.jsonl"),
               roots=[tmp_path], tmp=tmp_path)
    yield d
    d.kill()


def test_daemon_requiring_consent_refuses_then_accepts(strict, tmp_path):
    src = str(footage("d12.mp4"))
    with Client(strict.endpoint, timeout=10, hello=True) as c:
        assert c.describe()["consent_required"] is True and c.status()["consent_required"] is True
        with pytest.raises(DaemonError) as err:
            c.open(src, frames="0-3", emotion="happy", user="artist1", application="Nuke 15")
        assert err.value.code == "consent_required"
        assert "consent" in str(err.value) and "d12.mp4" in str(err.value)
        with pytest.raises(DaemonError) as err:
            c.open(src, frames="0-3", emotion="happy", consent="   ")
        assert err.value.code == "consent_required"
        with pytest.raises(DaemonError) as err:       # malformed: a parameter error, not a consent one
            c.open(src, frames="0-3", emotion="happy", consent="a\nb")
        assert err.value.code == "invalid_parameter"
        shot = c.open(src, frames="0-3", emotion="happy", consent="REL-2231", user="artist1", host="ws12",
                      application="Nuke 15")
        info = shot.wait(timeout=30)
        assert info["state"] == "ready"
        assert info["provenance"]["consent"] == "REL-2231" and info["provenance"]["user"] == "artist1"
        assert info["provenance"]["source"] == "d12.mp4" and info["provenance"]["kind"] == "video"
        pixels = np.full((8, 8, 3), 7, np.uint8)
        assert np.array_equal(shot.render(2, pixels), pixels)
        shot.close()
    log = read_audit_log(tmp_path / "audit.jsonl")
    events = [r["event"] for r in log]
    assert events == ["refused", "refused", "open", "close"]
    refused = log[0]
    assert refused["reason"] == "consent_required" and refused["who"]["user"] == "artist1"
    assert refused["who"]["peer"] == "127.0.0.1" and refused["shot"]["source"].endswith("d12.mp4")
    assert log[2]["consent"] == "REL-2231" and log[3]["consent"] == "REL-2231" and log[3]["rendered_count"] == 1
    assert log[3]["rendered"].startswith("2 ") and log[3]["reason"] == "closed" and log[3]["renders"] == 1


def test_daemon_without_the_flag_accepts_an_edit_without_consent(tmp_path):
    d = Daemon("--engine", "identity", "--no-audit-log", roots=[tmp_path], tmp=tmp_path)
    try:
        with Client(d.endpoint, timeout=10) as c:
            assert c.describe()["consent_required"] is False
            shot = c.open(str(footage("d12.mp4")), frames="0-1", emotion="sad")
            info = shot.wait(timeout=30)
            assert info["state"] == "ready" and "consent" not in info["provenance"]
            shot.close()
    finally:
        d.kill()
