"""Patient data and tokens never reach a log, at any level."""
import logging

from tests.conftest import bearer, jane

NAME_MARKER = "Zqxname7731"
HISTORY_MARKER = "Zqxhistory4410"


def send_marked_patients(client, appointment_id):
    """Send add_and_link bodies carrying the markers (answered 201, 409, 404, 400); return the statuses and token."""
    headers = bearer()
    bodies = [
        jane(appointment_id, firstName=NAME_MARKER, medicalHistory=HISTORY_MARKER),  # 201
        jane(appointment_id, firstName=NAME_MARKER, medicalHistory=HISTORY_MARKER),  # 409
        jane("65f8a1b2c3d4e5f6789012ef", lastName=NAME_MARKER, medicalHistory=HISTORY_MARKER),  # 404
        jane(appointment_id, firstName=NAME_MARKER, dateOfBirth=HISTORY_MARKER),  # 400
    ]
    statuses = [client.post("/patients/add_and_link?uid=doctor_a", json=body, headers=headers).status_code
                for body in bodies]
    return statuses, headers["Authorization"].split()[1]


def test_patient_data_and_tokens_never_reach_the_logs(client, add_appointment, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    statuses, token = send_marked_patients(client, add_appointment())

    assert statuses == [201, 409, 404, 400]
    captured = caplog.text + "".join(capfd.readouterr())
    assert "add_and_link" in captured  # the request lines were captured
    for secret in (NAME_MARKER, HISTORY_MARKER, token):
        assert secret not in captured
