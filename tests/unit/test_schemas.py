"""The add_and_link body schema: what it accepts, how it shapes it, and what it refuses by name."""
import datetime

import pytest
from marshmallow import ValidationError

from app.service.schemas import add_and_link_request, doctor_query, listing_query, patient_view

VALID = {"appointment_id": "65F8A1B2C3D4E5F6789012EF", "firstName": " Jane ", "lastName": "Smith"}


def refused_fields(body):
    """Return the field names the schema refuses in body."""
    with pytest.raises(ValidationError) as refused:
        add_and_link_request.load(body)
    return refused.value.messages


def test_a_minimal_body_loads_trimmed_with_a_lower_case_id():
    assert add_and_link_request.load(VALID) == {
        "appointment_id": "65f8a1b2c3d4e5f6789012ef", "firstName": "Jane", "lastName": "Smith"}


def test_a_full_body_loads_unchanged():
    body = {**VALID, "firstName": "Jane", "dateOfBirth": "2000-02-29",
            "address": {"street": "1 A St", "city": "Boston", "state": "MA", "zipCode": "02101"},
            "insurance": {"provider": "Aetna", "policyNumber": "P1"},
            "medicalHistory": "h" * 10_000, "currentMedications": "",
            "contact": {"phone": "+15551234567", "email": "a.b@example.org"}}
    loaded = add_and_link_request.load(body)
    assert loaded == {**body, "appointment_id": "65f8a1b2c3d4e5f6789012ef"}


def test_today_is_an_acceptable_birth_date_but_next_week_is_not():
    today = datetime.date.today()
    assert add_and_link_request.load({**VALID, "dateOfBirth": today.isoformat()})["dateOfBirth"] == today.isoformat()
    assert "dateOfBirth" in refused_fields({**VALID, "dateOfBirth": (today + datetime.timedelta(days=7)).isoformat()})


@pytest.mark.parametrize("value", ["1990-3-20", "1990-13-01", "2023-02-29", "1990-03-20T00:00:00", "1990-03-20\n", "",
                                   19900320, None, "１９９０-03-20"])
def test_birth_dates_that_are_not_real_calendar_dates_are_refused(value):
    assert "dateOfBirth" in refused_fields({**VALID, "dateOfBirth": value})


@pytest.mark.parametrize("field,value", [
    ("firstName", "x" * 101), ("firstName", 5), ("lastName", ["Smith"]), ("lastName", {"$gt": ""}),
    ("medicalHistory", "x" * 10_001), ("currentMedications", 3.5), ("address", []), ("address", None),
    ("contact", {"phone": "12-34"}), ("contact", {"phone": "++123"}), ("contact", {"email": "@example.org"}),
    ("insurance", {"provider": None}), ("appointment_id", "65f8a1b2c3d4e5f6789012e"),
    ("appointment_id", "65f8a1b2c3d4e5f6789012ef\n"), ("contact", {"phone": "+1234567\n"}),
])
def test_wrong_values_and_wrong_types_are_refused_by_field(field, value):
    assert field in refused_fields({**VALID, field: value})


@pytest.mark.parametrize("body,path", [
    ({**VALID, "_id": "x"}, ["_id"]),
    ({**VALID, "doctor_id": "x"}, ["doctor_id"]),
    ({**VALID, "patient_id": "x"}, ["patient_id"]),
    ({**VALID, "address": {"country": "US"}}, ["address", "country"]),
    ({**VALID, "contact": {"fax": "1"}}, ["contact", "fax"]),
])
def test_unknown_fields_at_any_level_are_refused_by_name(body, path):
    messages = refused_fields(body)
    for key in path:
        messages = messages[key]
    assert messages == ["Unknown field."]


def test_the_view_shows_ids_first_and_hides_the_appointment_id():
    shown = patient_view.dump({"_id": "a" * 24, "doctor_id": "doc", "firstName": "J", "lastName": "S",
                               "appointment_id": "b" * 24})
    assert list(shown) == ["_id", "doctor_id", "firstName", "lastName"]


@pytest.mark.parametrize("field,value", [
    ("firstName", "Ja\x00ne"), ("firstName", "Jane\n"), ("lastName", "Smi\rth"), ("lastName", "\x1bSmith"),
    ("firstName", "Jane\x7f"), ("lastName", "Smith\x9b"), ("firstName", " Jane\x1f "), ("firstName", "\tJane"),
    ("address", {"street": "1 A St\n2 B St"}), ("insurance", {"policyNumber": "P\x001"}),
    ("medicalHistory", "ok\x00"), ("currentMedications", "\x1b[0m"), ("medicalHistory", "\x0c"),
])
def test_control_characters_are_refused_by_field(field, value):
    assert field in refused_fields({**VALID, field: value})


def test_free_text_keeps_tabs_and_line_breaks_and_names_keep_other_scripts():
    loaded = add_and_link_request.load({**VALID, "firstName": "Zoë", "lastName": "O'Brien-李",
                                        "medicalHistory": "a\n\tb\r\nc", "currentMedications": "x\ty"})
    assert (loaded["firstName"], loaded["lastName"]) == ("Zoë", "O'Brien-李")
    assert (loaded["medicalHistory"], loaded["currentMedications"]) == ("a\n\tb\r\nc", "x\ty")


@pytest.mark.parametrize("uid,accepted", [
    ("doctor_uid_123", True), ("Xy7aB3cD9eF1gH2iJ4kL5mN6oP7q", True), ("a" * 128, True), ("!~", True),
    ("a" * 129, False), ("doc tor", False), ("médecin", False), ("doc\x00", False), ("", False), ("\xa0", False),
])
def test_a_doctor_uid_is_1_to_128_printable_ascii_characters_without_spaces(uid, accepted):
    try:
        doctor_query.load({"uid": uid})
    except ValidationError as refused:
        assert not accepted and "uid" in refused.messages
    else:
        assert accepted


@pytest.mark.parametrize("cursor,accepted", [
    ("1796115600123_6b0827c1a5d7ad9a3eafca5d", True), ("-5_6B0827C1A5D7AD9A3EAFCA5D", True),
    ("999999999999999_" + "f" * 24, True), ("1_" + "f" * 23, False), ("1796115600123", False),
    ("WzE3OTYsImFiYyJd", False), ("1_" + "f" * 24 + "\n", False),
    ("6b0827c1a5d7ad9a3eafca5d", True), ("_6b0827c1a5d7ad9a3eafca5d", False), ("6b0827c1a5d7ad9a3eafca5d_", False),
])
def test_a_cursor_is_milliseconds_and_an_id_or_an_id_alone(cursor, accepted):
    try:
        listing_query.load({"uid": "doc", "after": cursor})
    except ValidationError as refused:
        assert not accepted and "after" in refused.messages
    else:
        assert accepted
