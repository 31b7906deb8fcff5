"""Lifecycle fields of templates (``replaced_by``, ``sunset``) and the resolution rules they
drive (tasker_host.lifecycle, Registry.resolve)."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from tasker_host.errors import NoMatchingVersionError, VersionSunsetError
from tasker_host.host import open_catalog
from tasker_host.settings import HostSettings
from tasker_host.templates import TemplateLoader
from tasker_host.testing import FakeEntryPoint, NoopHandler, make_plugin, template_doc
from tests.template_support import MINIMAL, assert_problem, only, problems_of

BEFORE, ON, AFTER = date(2027, 2, 28), date(2027, 3, 1), date(2027, 3, 2)


@pytest.fixture(scope="module")
def loader() -> TemplateLoader:
    return TemplateLoader()


def test_lifecycle_fields_load(loader: TemplateLoader) -> None:
    text = MINIMAL + 'deprecated: "use 2.x"\nreplaced_by: "~=2.0"\nsunset: 2027-03-01\n'
    t, problems = loader.load_text(text, "t.yaml")
    assert problems == [] and t is not None
    assert (t.deprecated, t.replaced_by, t.sunset) == ("use 2.x", "~=2.0", ON)
    assert t.is_deprecated and not t.sunset_reached(BEFORE) and t.sunset_reached(ON)
    plain, _ = loader.load_text(MINIMAL, "t.yaml")
    assert plain is not None and not plain.is_deprecated and plain.sunset is None


def test_replaced_by_or_sunset_alone_deprecate(loader: TemplateLoader) -> None:
    for extra in ('replaced_by: "2.0.0"\n', 'sunset: "2027-03-01"\n'):
        t, _ = loader.load_text(MINIMAL + extra, "t.yaml")
        assert t is not None and t.is_deprecated and t.deprecated is None


def test_sunset_may_be_a_date_value_in_a_parsed_mapping(loader: TemplateLoader) -> None:
    doc = template_doc("payments", "refund", "1.0.0", sunset=ON)
    t, problems = loader.load_mapping(doc)
    assert problems == [] and t is not None and t.sunset == ON
    assert t.document["sunset"] == "2027-03-01"  # the document stays JSON data
    _, problems = loader.load_mapping(template_doc("payments", "refund", "1.0.0", sunset=datetime(2027, 3, 1, 10)))
    assert "sunset must be a date written YYYY-MM-DD" in only(problems).message


@pytest.mark.parametrize(("extra", "key", "words"), [
    ('replaced_by: "soon"\n', "replaced_by", ("'soon' is not a version request", "~=3.0")),
    ('replaced_by: "~=1.0"\n', "replaced_by", ("includes this version (1.0.0) itself",)),
    ("replaced_by: 3\n", "replaced_by", ("must be of type string",)),
    ('replaced_by: ""\n', "replaced_by", ("",)),
    ("sunset: 2027-02-30\n", "sunset", ("YYYY-MM-DD", "'2027-02-30'")),
    ("sunset: 2027-03-01T10:00:00Z\n", "sunset", ("YYYY-MM-DD",)),
    ("sunset: next spring\n", "sunset", ("YYYY-MM-DD", "'next spring'")),
    ("sunset: 20270301\n", "sunset", ("must be of type string", "integer")),
])
def test_bad_lifecycle_values_name_file_line_and_key(loader: TemplateLoader, extra: str, key: str,
                                                      words: tuple[str, ...]) -> None:
    assert_problem(only(problems_of(loader, MINIMAL + extra)), 10, key, *words)


def test_every_lifecycle_problem_is_reported_at_once(loader: TemplateLoader) -> None:
    found = problems_of(loader, MINIMAL + 'replaced_by: "x y"\nsunset: "tomorrow"\n')
    assert [(p.line, p.key) for p in found] == [(10, "replaced_by"), (11, "sunset")]


# --- resolution -------------------------------------------------------------------------------
def registry(*docs):
    plugin = make_plugin(["payments"], list(docs), {"Noop": NoopHandler})
    ep = FakeEntryPoint.of("payments", plugin, dist="tasker-payments", version="1.0.0")
    return open_catalog(HostSettings(), entry_points=[ep]).registry


def refund(version: str, **extra):
    return template_doc("payments", "refund", version, **extra)


def test_omitted_version_skips_deprecated_while_a_current_one_exists() -> None:
    reg = registry(refund("1.0.0"), refund("2.0.0", deprecated="broken"), refund("2.1.0", replaced_by="1.0.0"))
    assert str(reg.resolve("payments", "refund").version) == "1.0.0"
    assert str(reg.resolve("payments", "refund", today=BEFORE).version) == "1.0.0"
    # ranges and exact versions may still pick a deprecated one
    assert str(reg.resolve("payments", "refund", ">=2").version) == "2.1.0"
    assert str(reg.resolve("payments", "refund", "2.0.0").version) == "2.0.0"


def test_omitted_version_falls_back_to_the_newest_deprecated_one() -> None:
    reg = registry(refund("1.0.0", deprecated=True), refund("2.0.0", deprecated="old"))
    assert str(reg.resolve("payments", "refund").version) == "2.0.0"


def test_sunset_versions_are_never_chosen_for_new_tasks() -> None:
    reg = registry(refund("2.0.0", sunset="2027-03-01", replaced_by="~=3.0"), refund("2.1.0"),
                   refund("3.0.0"), refund("3.1.0"))
    assert str(reg.resolve("payments", "refund", "2.0.0", today=BEFORE).version) == "2.0.0"
    with pytest.raises(VersionSunsetError) as info:
        reg.resolve("payments", "refund", "2.0.0", today=ON)
    err = info.value
    assert (err.full_name, err.sunset, err.replaced_by, err.replacement) == (
        "payments.refund@2.0.0", "2027-03-01", "~=3.0", "payments.refund@3.1.0")
    assert str(err) == ("payments.refund@2.0.0 reached its sunset on 2027-03-01 and accepts no new tasks; "
                        "use payments.refund@3.1.0 (replaced_by ~=3.0)")
    assert str(reg.resolve("payments", "refund", "~=2.0", today=AFTER).version) == "2.1.0"  # not the sunset one
    # without a day (catalogue lookups) sunsets do not apply
    assert str(reg.resolve("payments", "refund", "2.0.0").version) == "2.0.0"


def test_sunset_without_an_installed_replacement_says_so() -> None:
    reg = registry(refund("1.0.0", sunset="2027-03-01", replaced_by="~=9.0"))
    with pytest.raises(VersionSunsetError, match="replaced by versions ~=9.0, none of which is installed"):
        reg.resolve("payments", "refund", today=AFTER)
    reg = registry(refund("1.0.0", sunset="2027-03-01"))
    with pytest.raises(VersionSunsetError) as info:
        reg.resolve("payments", "refund", today=ON)
    assert info.value.replacement is None and str(info.value).endswith("accepts no new tasks")
    with pytest.raises(NoMatchingVersionError):
        reg.resolve("payments", "refund", "2.0.0", today=ON)
