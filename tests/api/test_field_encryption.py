"""Field-level encryption: no patient value reaches the database readable, and callers see no difference."""

import bson
import mongomock
import pytest
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from app import create_app
from app.store.field_encryption import MasterKeyMismatch
from tests.conftest import bearer, make_config

DOCTOR = bearer("doctor_a")


def marked_patient(tag):
    """Return a patient whose every value carries a marker of its own, findable in raw bytes."""
    return {
        "firstName": f"Qfirst{tag}", "lastName": f"Qlast{tag}", "dateOfBirth": "1961-07-13",
        "address": {"street": f"Qstreet{tag}", "city": f"Qcity{tag}", "state": f"Qstate{tag}", "zipCode": f"Qzip{tag}"},
        "insurance": {"provider": f"Qprovider{tag}", "policyNumber": f"Qpolicy{tag}"},
        "medicalHistory": f"Qhistory{tag}", "currentMedications": f"Qmedication{tag}",
        "contact": {"phone": "+19990001961", "email": f"qemail{tag}@example.com"},
    }


def markers(patient):
    """Return every value of a patient as it would appear in plain storage, lower-cased copies included."""
    found = []

    def walk(value):
        if isinstance(value, dict):
            for inner in value.values():
                walk(inner)
        else:
            found.extend({value, value.lower()})

    walk(patient)
    return found


def raw_documents(mongo):
    """Yield (collection, raw BSON) of every document of every collection, read by a client with no keys."""
    client, name = mongo
    if not isinstance(client, mongomock.MongoClient):
        db = client.get_database(name, codec_options=CodecOptions(document_class=RawBSONDocument))
        for collection in db.list_collection_names():
            for document in db[collection].find():
                yield collection, document.raw
    else:  # mongomock keeps documents as dicts: encode them as the server would store them
        db = client[name]
        for collection in db.list_collection_names():
            for document in db[collection].find():
                yield collection, bson.encode(document)


def readable(mongo, values):
    """Return the (collection, value) pairs of values found readable anywhere in the database."""
    return sorted({(collection, value) for collection, raw in raw_documents(mongo)
                   for value in values if value.encode() in raw})


def create_appointment(client, date="2026-12-01T09:00:00Z", reason=None):
    """Create an appointment through the API and return its id."""
    body = {"date": date, **({"reason": reason} if reason else {})}
    response = client.post("/appointments?uid=doctor_a", json=body, headers=DOCTOR)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]["_id"]


def test_no_patient_value_is_readable_in_any_collection_and_every_route_reads_it_back(mongo, client):
    # Every way a patient value is stored: add_and_link with and without a key, the documented 404 with a key
    # (its answer holds the whole patient), a PATCH (the old version goes to the history).
    plain, keyed, kept, patch = (marked_patient(tag) for tag in ("Plain7", "Keyed7", "Kept7", "Patch7"))
    # The reason for a visit says something of the patient's health too.
    reason = "Qreason7 chest pain follow-up"
    appointment_id = create_appointment(client, reason=reason)
    created = client.post("/patients/add_and_link?uid=doctor_a",
                          json={"appointment_id": appointment_id, **plain}, headers=DOCTOR)
    replayable = {"appointment_id": create_appointment(client, "2026-12-02T09:00:00Z"), **keyed}
    first = client.post("/patients/add_and_link?uid=doctor_a", json=replayable,
                        headers={**DOCTOR, "Idempotency-Key": "encryption-1"})
    not_found = client.post("/patients/add_and_link?uid=doctor_a",
                            json={"appointment_id": "0123456789abcdef01234567", **kept},
                            headers={**DOCTOR, "Idempotency-Key": "encryption-2"})
    patient_id = created.get_json()["data"]["_id"]
    patched = client.patch(f"/patients/{patient_id}?uid=doctor_a", json=patch, headers={**DOCTOR, "If-Match": '"1"'})
    assert (created.status_code, first.status_code, not_found.status_code, patched.status_code) == (201, 201, 404, 200)

    everything = markers(plain) + markers(keyed) + markers(kept) + markers(patch) + ["Qreason7"]
    assert readable(mongo, everything) == []

    # Callers read every value back in plain, from each place it is kept.
    assert client.get(f"/patients/{patient_id}?uid=doctor_a", headers=DOCTOR).get_json()["data"] == {
        "_id": patient_id, "doctor_id": "doctor_a", **patch}
    history = client.get(f"/patients/{patient_id}/history?uid=doctor_a", headers=DOCTOR).get_json()["data"]
    assert [{k: v for k, v in entry.items() if k in plain} for entry in history] == [patch, plain]
    replay = client.post("/patients/add_and_link?uid=doctor_a", json=replayable,
                         headers={**DOCTOR, "Idempotency-Key": "encryption-1"})
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == first.get_json() and replay.headers["ETag"] == first.headers["ETag"]
    kept_replay = client.post("/patients/add_and_link?uid=doctor_a",
                              json={"appointment_id": "0123456789abcdef01234567", **kept},
                              headers={**DOCTOR, "Idempotency-Key": "encryption-2"})
    assert kept_replay.status_code == 404 and kept_replay.get_json() == not_found.get_json()
    assert kept_replay.get_json()["data"]["firstName"] == kept["firstName"]
    listed = client.get("/patients?uid=doctor_a&q=qfirstkeyed&dateOfBirth=1961-07-13", headers=DOCTOR).get_json()
    assert [p["lastName"] for p in listed["data"]] == [keyed["lastName"]]
    appointment = client.get(f"/appointments/{appointment_id}?uid=doctor_a", headers=DOCTOR).get_json()["data"]
    assert appointment["reason"] == reason and appointment["patient_id"] == patient_id
    listed = client.get("/appointments?uid=doctor_a&linked=true", headers=DOCTOR).get_json()["data"]
    assert [a["reason"] for a in listed if a["_id"] == appointment_id] == [reason]


def test_the_scan_finds_values_stored_without_encryption(mongo):
    # The control for the scan above: the same write with FIELD_ENCRYPTION=off is found, so an empty scan means
    # the values were sealed, not that the scan cannot see them.
    client, name = mongo
    app = create_app(make_config(MONGO_CLIENT=client, MONGODB_DB=name, FIELD_ENCRYPTION=False, MASTER_KEY=None))
    patient = marked_patient("Control7")
    api = app.test_client()
    response = api.post("/patients/add_and_link?uid=doctor_a",
                        json={"appointment_id": create_appointment(api, reason="Qreason7"), **patient}, headers=DOCTOR)
    assert response.status_code == 201
    found = {value for _, value in readable(mongo, markers(patient) + ["Qreason7"])}
    assert found >= {patient["firstName"], patient["medicalHistory"], patient["contact"]["email"], "Qreason7"}


NAMES = [("Ana", "Smith", "1990-03-20"), ("anabel", "Jones", "1985-01-02"), ("Zoë", "ANDERSEN", "1990-03-20"),
         ("Bob", "Anaya", "1970-05-05"), ("Émile", "O'Brien-李", "2001-12-31"), ("Li", "Na", "1990-03-20")]
QUERIES = ["an", "AN", "ana", "anab", "a", "smith", "smithy", "zoë", "ZO", "é", "o'b", "o'brien-李", "na", "x", "Ana ",
           "li"]


def list_ids(api, **query):
    """Return the ids a patient list answers, following every page."""
    ids, after = [], None
    while True:
        params = {"uid": "doctor_a", "limit": 2, **query, **({"after": after} if after else {})}
        response = api.get("/patients", query_string=params, headers=DOCTOR)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        ids.extend(patient["_id"] for patient in body["data"])
        after = body["next"]
        if not after:
            return ids


@pytest.mark.parametrize("backend", ["mongomock", "replica_set"], indirect=True)
def test_name_prefix_and_birth_date_searches_answer_as_before_encryption(backend, mongo):
    # The same patients, created through the API, in a database stored plain (as before) and in one sealed.
    client, name = mongo
    answers = {}
    for encrypted in (False, True):
        settings = {} if encrypted else {"FIELD_ENCRYPTION": False, "MASTER_KEY": None}
        app = create_app(make_config(MONGO_CLIENT=client, MONGODB_DB=f"{name}_{encrypted}", **settings))
        api = app.test_client()
        order = []
        for first, last, born in NAMES:
            body = {"appointment_id": create_appointment(api), "firstName": first, "lastName": last,
                    "dateOfBirth": born}
            answer = api.post("/patients/add_and_link?uid=doctor_a", json=body, headers=DOCTOR)
            order.append(answer.get_json()["data"]["_id"])
        other_doctor = {"appointment_id": "0123456789abcdef01234567", "firstName": "Ana", "lastName": "Smith"}
        api.post("/patients/add_and_link?uid=doctor_b", json=other_doctor, headers=bearer("doctor_b"))
        # Ids differ between the databases: compare positions in creation order.
        position = {patient_id: index for index, patient_id in enumerate(order)}
        answers[encrypted] = {
            **{f"q={q}": [position[i] for i in list_ids(api, q=q)] for q in QUERIES},
            **{f"dateOfBirth={born}": [position[i] for i in list_ids(api, dateOfBirth=born)]
               for born in ("1990-03-20", "1985-01-02", "1999-09-09")},
            "q=ana&dateOfBirth=1990-03-20": [position[i] for i in list_ids(api, q="ana", dateOfBirth="1990-03-20")],
        }
    assert answers[True] == answers[False]
    # And what they answer is what the rule says, newest first: a name starting with q in any case, from three
    # characters; a shorter q, a whole name.
    for q in ("ana", "an", "li", "na", "a", "o'b"):
        expected = [index for index in reversed(range(len(NAMES)))
                    if any(n.lower().startswith(q) if len(q) >= 3 else n.lower() == q for n in NAMES[index][:2])]
        assert answers[True][f"q={q}"] == expected
    assert answers[True]["q=ana"] and answers[True]["q=li"] and not answers[True]["q=an"]
    for encrypted in (False, True):
        client.drop_database(f"{name}_{encrypted}")


def test_a_stored_request_digest_is_keyed_not_a_bare_hash_of_the_body(client, db, unsealed):
    body = {"appointment_id": create_appointment(client), **marked_patient("Digest7")}
    response = client.post("/patients/add_and_link?uid=doctor_a", json=body,
                           headers={**DOCTOR, "Idempotency-Key": "digest-1"})
    assert response.status_code == 201
    record = db.idempotency_keys.find_one({"key": "digest-1"})
    assert "fingerprint" not in record and "body" not in record
    assert len(bytes(record["request_mac"])) == 16
    assert unsealed.answer(record)["body"] == response.get_json()


def test_a_sealed_record_answers_an_error_when_encryption_is_switched_off(mongo, client):
    created = client.post("/patients/add_and_link?uid=doctor_a",
                          json={"appointment_id": create_appointment(client), **marked_patient("Off7")}, headers=DOCTOR)
    patient_id = created.get_json()["data"]["_id"]
    mongo_client, name = mongo
    plain_app = create_app(make_config(MONGO_CLIENT=mongo_client, MONGODB_DB=name, FIELD_ENCRYPTION=False,
                                       MASTER_KEY=None))
    response = plain_app.test_client().get(f"/patients/{patient_id}?uid=doctor_a", headers=DOCTOR)
    assert response.status_code == 500
    assert "Qfirst" not in response.get_data(as_text=True)


def test_another_master_key_cannot_start_on_a_database_sealed_with_the_first(mongo, client):
    from config import local_master_key
    from scripts.dev_secret import new_master_key

    assert client.post("/patients/add_and_link?uid=doctor_a",
                       json={"appointment_id": create_appointment(client), **marked_patient("Other7")},
                       headers=DOCTOR).status_code == 201
    mongo_client, name = mongo
    other = local_master_key("FIELD_ENCRYPTION_KEY", new_master_key())
    with pytest.raises(MasterKeyMismatch, match="configure the master key it was made with") as refused:
        create_app(make_config(MONGO_CLIENT=mongo_client, MONGODB_DB=name, MASTER_KEY=other))
    assert "\n" not in str(refused.value) and other.provider in str(refused.value)


