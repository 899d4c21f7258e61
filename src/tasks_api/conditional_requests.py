"""HTTP conditional requests (RFC 9110 section 13): entity tags, If-Match and If-None-Match.

A task's entity tag is its `version`, which every write bumps in the same UPDATE: strong, cheap
(no hashing of the body) and exactly as fresh as the row. `If-Match` therefore becomes a version
condition that the repository puts into the UPDATE's WHERE clause, so the check and the write are
one statement and no concurrent write can slip in between.
"""

import re
from dataclasses import dataclass

# An entity-tag: optional weakness marker, then an opaque string in double quotes (RFC 9110 8.8.3).
# The opaque part may itself contain commas, so a list is scanned, never split.
_ENTITY_TAG = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"')
# `version` is an int4 column: a larger number cannot match, and must not reach the query.
_MAX_VERSION = 2**31 - 1


class MalformedConditionError(ValueError):
    """The header is neither `*` nor a list of quoted entity tags."""


def entity_tag(version: int) -> str:
    return f'"{version}"'


@dataclass(frozen=True)
class VersionCondition:
    """What a precondition header accepts: any version (`*`) or the listed ones."""

    any_version: bool
    versions: frozenset[int]

    def accepts(self, version: int) -> bool:
        return self.any_version or version in self.versions


def parse_if_match(header: str) -> VersionCondition:
    """If-Match uses the strong comparison: a weak tag never matches (RFC 9110 13.1.1)."""
    return _parse(header, weak_matches=False)


def parse_if_none_match(header: str) -> VersionCondition:
    """If-None-Match uses the weak comparison: `W/"3"` matches version 3 (RFC 9110 13.1.2)."""
    return _parse(header, weak_matches=True)


def _parse(header: str, *, weak_matches: bool) -> VersionCondition:
    if header.strip() == "*":
        return VersionCondition(any_version=True, versions=frozenset())
    versions: set[int] = set()
    tags = 0
    position = 0
    while position < len(header):
        position = _skip_space(header, position)
        if header.startswith(",", position):
            position += 1  # RFC 9110 5.6.1: empty list elements are ignored
            continue
        if position == len(header):
            break
        match = _ENTITY_TAG.match(header, position)
        if match is None:
            raise MalformedConditionError(header)
        tags += 1
        weak, opaque = match.groups()
        # Tags this service never issued are valid syntax; they just match no version.
        if (weak_matches or not weak) and opaque.isascii() and opaque.isdigit():
            version = int(opaque)
            if version <= _MAX_VERSION:
                versions.add(version)
        position = _skip_space(header, match.end())
        if position < len(header) and not header.startswith(",", position):
            raise MalformedConditionError(header)
    if tags == 0:
        raise MalformedConditionError(header)
    return VersionCondition(any_version=False, versions=frozenset(versions))


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t":
        position += 1
    return position
