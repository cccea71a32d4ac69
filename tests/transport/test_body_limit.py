"""A body over 64 KiB answers 413 in the envelope and writes nothing, however it is framed."""
import io
import json

import pytest
from bson import ObjectId

from tests.conftest import jane, make_token
from tests.transport.wire import chunked, exchange

LIMIT = 64 * 1024
TOO_LARGE = {"success": False, "error": "Request body too large (limit 64 KiB)"}


def json_padded_past_the_limit(appointment_id):
    """Return a valid JSON body padded with spaces to exactly the limit, then garbage beyond it."""
    body = json.dumps(jane(appointment_id)).encode()
    return body + b" " * (LIMIT - len(body)) + b"garbage" * 1000


def add_and_link_chunked(port, doctor, body):
    """POST /patients/add_and_link with a chunked body over a raw socket."""
    head = (f"POST /patients/add_and_link?uid={doctor} HTTP/1.1\r\nHost: clinic\r\n"
            f"Authorization: Bearer {make_token(doctor)}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    return exchange(port, head + chunked(body))


@pytest.fixture
def appointment(stored, request):
    """An appointment without a patient, of a doctor named after the test."""
    appointment_id = ObjectId()
    stored.appointments.insert_one({"_id": appointment_id, "doctor_id": request.node.name, "patient_id": None})
    return request.node.name, str(appointment_id)


@pytest.mark.slow
@pytest.mark.realdb
def test_a_chunked_body_over_the_limit_answers_413_and_creates_no_patient(service, stored, appointment):
    doctor, appointment_id = appointment
    status, headers, body = add_and_link_chunked(service.port, doctor, json_padded_past_the_limit(appointment_id))

    assert (status, json.loads(body)) == (413, TOO_LARGE)
    assert headers["content-type"] == "application/json"
    assert stored.patients.count_documents({"doctor_id": doctor}) == 0
    assert stored.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"] is None


@pytest.mark.slow
@pytest.mark.realdb
def test_a_chunked_body_within_the_limit_is_read_whole(service, stored, appointment):
    doctor, appointment_id = appointment
    status, _, body = add_and_link_chunked(service.port, doctor, json.dumps(jane(appointment_id)).encode())

    assert status == 201 and json.loads(body)["data"]["lastName"] == "Smith"
    patient_id = json.loads(body)["data"]["_id"]
    assert stored.patients.count_documents({"doctor_id": doctor}) == 1
    assert str(stored.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"]) == patient_id


@pytest.mark.parametrize("backend", ["mongomock"])
def test_a_streamed_body_over_the_limit_answers_413_through_the_app(client, db, add_appointment):
    appointment_id = add_appointment(doctor_id="doc_chunked")
    response = client.post(
        "/patients/add_and_link?uid=doc_chunked",
        input_stream=io.BytesIO(json_padded_past_the_limit(appointment_id)),
        headers={"Authorization": "Bearer " + make_token("doc_chunked"), "Content-Type": "application/json",
                 "Transfer-Encoding": "chunked"},
        # What gunicorn says of a chunked body: it ends the stream itself, and there is no Content-Length.
        environ_overrides={"wsgi.input_terminated": True},
    )

    assert (response.status_code, response.get_json()) == (413, TOO_LARGE)
    assert db.patients.count_documents({}) == 0
