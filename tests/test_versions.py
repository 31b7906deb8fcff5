from __future__ import annotations

import pytest
from packaging.version import Version

from tasker_host.errors import ConfigurationError
from tasker_host.versions import VersionRequest, split_reference

V = [Version(v) for v in ("1.0.0", "2.0.0", "2.1.3", "2.9.0", "2.10.0", "3.0.0rc1")]


@pytest.mark.parametrize(("spec", "expected"), [
    ("2.1.3", "2.1.3"),
    ("2.1.3.0", "2.1.3"),  # 2.1.3 == 2.1.3.0 under PEP 440
    ("~=2.1", "2.10.0"),
    (">=2,<3", "2.10.0"),
    ("<2.10", "2.9.0"),
    (None, "2.10.0"),  # omitted: newest stable, not the 3.0.0 pre-release
    ("", "2.10.0"),
    ("3.0.0rc1", "3.0.0rc1"),  # a pre-release when named exactly
    (">=3.0.0rc1", "3.0.0rc1"),  # ... or in a range bound
    (">=2.11", None),
    ("4.0", None),
])
def test_select(spec, expected):
    chosen = VersionRequest.parse(spec).select(V)
    assert chosen == (Version(expected) if expected else None)


def test_2_10_sorts_above_2_9():
    assert VersionRequest.parse(None).select([Version("2.9.0"), Version("2.10.0")]) == Version("2.10.0")


def test_invalid_spec_is_a_clear_error():
    with pytest.raises(ConfigurationError, match="invalid version request 'banana'"):
        VersionRequest.parse("banana")


def test_split_reference():
    assert split_reference("payments.process_refund@~=2.1") == ("payments", "process_refund", "~=2.1")
    assert split_reference("payments.process_refund") == ("payments", "process_refund", None)
    with pytest.raises(ConfigurationError, match="NAMESPACE.NAME"):
        split_reference("process_refund")
