"""Entity tags of versioned records: the ETag a response carries and the If-Match a conditional write sends."""
import re

# One strong tag holding a version number, as this service issues them: `"3"`.
ENTITY_TAG = re.compile(r'^"([1-9][0-9]{0,17})"\Z')
# The same rule as a JSON Schema (ECMA) pattern, for the OpenAPI document.
ENTITY_TAG_PATTERN = ENTITY_TAG.pattern.removesuffix("\\Z") + "$"


def entity_tag(version: int) -> str:
    """Return the ETag of a record at this version."""
    return f'"{version}"'


def version_in(if_match: str) -> int | None:
    """Return the version an If-Match names, or None when it is not one tag this service issued (`*`, a list, weak)."""
    found = ENTITY_TAG.match(if_match.strip())
    return int(found.group(1)) if found else None
