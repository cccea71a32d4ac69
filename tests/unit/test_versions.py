"""Which version a stored record is read at, and that every version read is one a cursor and an ETag name back."""
import pytest
from bson import Decimal128, Int64, ObjectId

from app.http.etags import entity_tag, version_in
from app.store.cursors import decode_version_cursor, encode_version_cursor
from app.store.exceptions import InvalidCursor, UnreadableVersion
from app.store.versions import LAST_VERSION, version_of

PATIENT = str(ObjectId())


@pytest.mark.parametrize("stored, read_as", [({}, 1), ({"version": None}, 1), ({"version": 1}, 1),
                                             ({"version": Int64(7)}, 7), ({"version": LAST_VERSION}, LAST_VERSION)])
def test_a_version_is_read_as_the_integer_stored_and_none_as_the_first(stored, read_as):
    version = version_of(stored)

    assert (version, type(version)) == (read_as, int)


@pytest.mark.parametrize("version", ["2", 2.5, 2.0, True, False, [1], [], {"v": 1}, Decimal128("2"), 0, -3,
                                     float("nan"), LAST_VERSION + 1, Int64(2**63 - 1)])
def test_any_other_version_is_refused_as_unreadable(version):
    with pytest.raises(UnreadableVersion):
        version_of({"version": version})


def test_the_last_version_is_the_largest_a_history_cursor_and_an_etag_name_back():
    assert decode_version_cursor(encode_version_cursor(LAST_VERSION, PATIENT)) == LAST_VERSION
    assert version_in(entity_tag(LAST_VERSION)) == LAST_VERSION
    with pytest.raises(InvalidCursor):
        decode_version_cursor(encode_version_cursor(LAST_VERSION + 1, PATIENT))
