"""A validation refusal names a handful of fields at most, so its answer stays small whatever the body."""
import json

from bson import ObjectId

from tests.conftest import bearer, jane

BODY_LIMIT = 64 * 1024


def post_raw(client, body):
    """POST a JSON text to add_and_link as doctor_a."""
    return client.post("/patients/add_and_link?uid=doctor_a", data=body, content_type="application/json",
                       headers=bearer())


def assert_nothing_linked(db, appointment_id):
    """Assert that no patient was created and the appointment is still free."""
    assert db.patients.count_documents({}) == 0
    assert db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"] is None


def test_a_body_of_thousands_of_unknown_keys_is_answered_in_under_2_kb_naming_the_first_ten(client, db,
                                                                                              add_appointment):
    appointment_id = add_appointment()
    unknown = [f"unknown_{number:05d}" for number in range(3000)]
    body = json.dumps({**jane(appointment_id), **dict.fromkeys(unknown, 1)})
    assert 55_000 < len(body) < BODY_LIMIT

    response = post_raw(client, body)

    assert response.status_code == 400
    assert len(response.data) < 2048
    assert response.get_json() == {"success": False,
                                   "error": "Invalid fields: " + ", ".join(unknown[:10]) + " and 2990 more",
                                   "details": dict.fromkeys(unknown[:10], ["Unknown field."])}
    assert_nothing_linked(db, appointment_id)


def test_unknown_keys_of_a_nested_object_or_one_long_key_are_answered_in_under_2_kb(client, db, add_appointment):
    appointment_id = add_appointment()
    nested = jane(appointment_id, address={f"line_{number:05d}": "x" for number in range(3000)})
    long_key = jane(appointment_id, **{"k" * 60_000: 1})

    for body in (nested, long_key):
        response = post_raw(client, json.dumps(body))
        assert response.status_code == 400
        assert len(response.data) < 2048
    assert response.get_json()["error"] == "Invalid fields: " + "k" * 64 + "..."
    assert post_raw(client, json.dumps(nested)).get_json()["details"] == {
        "address": dict.fromkeys([f"line_{number:05d}" for number in range(10)], ["Unknown field."])}
    assert_nothing_linked(db, appointment_id)


def test_a_refusal_of_two_fields_names_both_with_their_messages(client, db, add_appointment):
    appointment_id = add_appointment()
    response = post_raw(client, json.dumps(jane(appointment_id, dateOfBirth="never", contact={"phone": "x"})))

    assert response.status_code == 400
    assert response.get_json() == {
        "success": False, "error": "Invalid fields: contact, dateOfBirth",
        "details": {"contact": {"phone": ["Must be digits with an optional leading +."]},
                    "dateOfBirth": ["Must be a calendar date YYYY-MM-DD."]}}
    assert_nothing_linked(db, appointment_id)
