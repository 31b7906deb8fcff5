"""Version requests: exact (``2.1.3``), PEP 440 ranges (``~=2.1``, ``>=2,<3``) or omitted."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from tasker_host.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class VersionRequest:
    """A parsed version request. ``exact`` and ``specifier`` are mutually exclusive."""

    text: str | None
    exact: Version | None = None
    specifier: SpecifierSet | None = None

    @classmethod
    def parse(cls, text: str | None) -> VersionRequest:
        text = (text or "").strip() or None
        if text is None:
            return cls(None)
        try:
            return cls(text, exact=Version(text))
        except InvalidVersion:
            pass
        try:
            return cls(text, specifier=SpecifierSet(text))
        except InvalidSpecifier:
            raise ConfigurationError(
                f"invalid version request {text!r}: use an exact version (2.1.3) "
                "or a PEP 440 range (~=2.1, >=2,<3)"
            ) from None

    @property
    def allows_prereleases(self) -> bool:
        """Pre-releases are chosen only when asked for by name (exactly or in a range bound)."""
        if self.exact is not None:
            return True
        if self.specifier is None:
            return False
        return any(_is_pre(s.version) for s in self.specifier)

    def select(self, versions: Iterable[Version]) -> Version | None:
        """The highest version satisfying the request, or None."""
        candidates = sorted(set(versions), reverse=True)
        if self.exact is not None:
            return next((v for v in candidates if v == self.exact), None)
        allow_pre = self.allows_prereleases
        for v in candidates:
            if v.is_prerelease and not allow_pre:
                continue
            if self.specifier is None or self.specifier.contains(v, prereleases=allow_pre):
                return v
        return None

    def describe(self) -> str:
        return self.text or "the newest stable version"


def _is_pre(text: str) -> bool:
    try:
        return Version(text.rstrip(".*")).is_prerelease
    except InvalidVersion:
        return False


def split_reference(reference: str) -> tuple[str, str, str | None]:
    """``namespace.name[@spec]`` → (namespace, name, spec)."""
    ref, _, spec = reference.partition("@")
    namespace, dot, name = ref.partition(".")
    if not dot or not namespace or not name:
        raise ConfigurationError(
            f"invalid workflow reference {reference!r}: expected NAMESPACE.NAME[@VERSION], "
            "e.g. payments.process_refund@~=2.1"
        )
    return namespace, name, (spec or None)
