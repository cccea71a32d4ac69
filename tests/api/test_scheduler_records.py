"""Appointments the clinic's scheduler wrote straight into the database: read as stored, listed, linked, never a 500."""
import datetime
import json
import uuid

import pytest
from bson import Binary, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import bearer, jane

UTC = datetime.timezone.utc
NINE = datetime.datetime(2026, 12, 1, 9, tzinfo=UTC)

# (what the scheduler stored besides the ids, what an answer shows of it besides the ids)
SHAPES = {
    "date as text": ({"date": "2026-12-01T09:00:00Z"}, {"date": "2026-12-01T09:00:00Z"}),
    "date as a number": ({"date": 1796115600000}, {"date": 1796115600000}),
    "date null": ({"date": None}, {"date": None}),
    "no date": ({}, {}),
    "date as a Decimal128": ({"date": Decimal128("1796115600.5")}, {}),
    "date as a list": ({"date": [NINE, "09:00"]}, {"date": ["2026-12-01T09:00:00Z", "09:00"]}),
    "reason as a number": ({"date": NINE, "reason": 42}, {"date": "2026-12-01T09:00:00Z", "reason": 42}),
    "reason as an object": ({"date": NINE, "reason": {"code": "A1", "booked": NINE}},
                            {"date": "2026-12-01T09:00:00Z",
                             "reason": {"code": "A1", "booked": "2026-12-01T09:00:00Z"}}),
    "reason as a list": ({"reason": ["check-up", 2, None, True]}, {"reason": ["check-up", 2, None, True]}),
    "reason as an ObjectId": ({"reason": ObjectId("65f8a1b2c3d4e5f6789012cd")},
                              {"reason": "65f8a1b2c3d4e5f6789012cd"}),
    "reason as bytes": ({"date": NINE, "reason": b"\x00\x01"}, {"date": "2026-12-01T09:00:00Z"}),
    "reason holding bytes": ({"reason": {"note": "x", "raw": b"\x00"}}, {}),
    "reason not a number": ({"reason": float("nan")}, {}),
    "extra fields": ({"date": NINE, "room": "3B", "source": {"system": "scheduler", "at": NINE}},
                     {"date": "2026-12-01T09:00:00Z"}),
}


def scheduled(db, doctor_id="doctor_a", **fields):
    """Insert an appointment as the scheduler writes it (no patient_id unless given) and return its id as a string."""
    appointment_id = ObjectId()
    db.appointments.insert_one({"_id": appointment_id, "doctor_id": doctor_id, **fields})
    return str(appointment_id)


def read(client, appointment_id, uid="doctor_a"):
    """GET one appointment as uid."""
    return client.get(f"/appointments/{appointment_id}?uid={uid}", headers=bearer(uid))


def listing(client, uid="doctor_a", **params):
    """GET /appointments with query parameters, as uid."""
    query = "&".join(f"{key}={value}" for key, value in {"uid": uid, **params}.items())
    return client.get(f"/appointments?{query}", headers=bearer(uid))


def stored_patient(db, appointment_id):
    """Return the patient_id the database holds for an appointment, or "absent"."""
    return db.appointments.find_one({"_id": ObjectId(appointment_id)}).get("patient_id", "absent")


@pytest.fixture
def add_patient(app, db):
    """Insert a patient of a doctor as the service stores one and return its id as a string."""
    app.extensions["clinic.db"].prepare()
    values = app.extensions["clinic.db"].values

    def add(doctor_id="doctor_a"):
        patient_id = ObjectId()
        db.patients.insert_one({"_id": patient_id, "doctor_id": doctor_id,
                                **values.patient(patient_id, doctor_id, {"firstName": "Jane", "lastName": "Smith"}),
                                "created_at": datetime.datetime.now(UTC)})
        return str(patient_id)

    return add


@pytest.mark.parametrize("shape", SHAPES)
def test_an_appointment_the_scheduler_wrote_reads_as_stored(client, db, shape):
    stored, shown = SHAPES[shape]
    appointment_id = scheduled(db, **stored)

    response = read(client, appointment_id)

    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"success": True, "data": {"_id": appointment_id, "doctor_id": "doctor_a",
                                                             "patient_id": None, **shown}}


@pytest.mark.parametrize("shape", ["date as text", "date as a Decimal128", "reason as an object"])
def test_add_and_link_links_a_scheduler_appointment_without_a_patient_id(client, db, shape):
    appointment_id = scheduled(db, **SHAPES[shape][0])

    response = client.post("/patients/add_and_link?uid=doctor_a", json=jane(appointment_id), headers=bearer())

    assert response.status_code == 201, response.get_json()
    patient_id = response.get_json()["data"]["_id"]
    assert stored_patient(db, appointment_id) == ObjectId(patient_id)
    shown = read(client, appointment_id)
    assert shown.status_code == 200
    assert shown.get_json()["data"] == {"_id": appointment_id, "doctor_id": "doctor_a", "patient_id": patient_id,
                                        **SHAPES[shape][1]}


@pytest.mark.parametrize("shape", ["date as text", "date as a number", "date as a list", "date as a Decimal128",
                                   "reason as a list"])
def test_link_and_unlink_work_on_a_scheduler_appointment_and_answer_it(client, db, add_patient, shape):
    stored, shown = SHAPES[shape]
    appointment_id = scheduled(db, **stored)
    patient_id = add_patient()
    expected = {"_id": appointment_id, "doctor_id": "doctor_a", **shown}

    linked = client.put(f"/appointments/{appointment_id}/patient?uid=doctor_a", json={"patient_id": patient_id},
                        headers=bearer())

    assert linked.status_code == 200, linked.get_json()
    assert linked.get_json()["data"] == {**expected, "patient_id": patient_id}
    assert stored_patient(db, appointment_id) == ObjectId(patient_id)

    freed = client.delete(f"/appointments/{appointment_id}/patient?uid=doctor_a", headers=bearer())

    assert freed.status_code == 200, freed.get_json()
    assert freed.get_json()["data"] == {**expected, "patient_id": None}
    assert stored_patient(db, appointment_id) is None
    assert db.appointments.find_one({"_id": ObjectId(appointment_id)}) == {
        "_id": ObjectId(appointment_id), "doctor_id": "doctor_a", **stored, "patient_id": None}


def test_an_appointment_linked_by_the_scheduler_with_a_text_id_can_be_unlinked(client, db, add_patient):
    patient_id = add_patient()
    appointment_id = scheduled(db, date="2026-12-01T09:00:00Z", patient_id=patient_id)

    assert read(client, appointment_id).get_json()["data"]["patient_id"] == patient_id
    again = client.put(f"/appointments/{appointment_id}/patient?uid=doctor_a", json={"patient_id": patient_id},
                       headers=bearer())
    freed = client.delete(f"/appointments/{appointment_id}/patient?uid=doctor_a", headers=bearer())

    assert again.status_code == 200 and again.get_json()["data"]["patient_id"] == patient_id
    assert freed.status_code == 200 and freed.get_json()["data"]["patient_id"] is None
    assert stored_patient(db, appointment_id) is None


@pytest.mark.parametrize("doctor_id", [["doctor_a"], ["doctor_a", "doctor_b"], "absent"])
def test_an_appointment_whose_doctor_id_is_not_text_is_not_the_doctors(client, db, add_patient, doctor_id):
    appointment_id = ObjectId()
    document = {"_id": appointment_id, "patient_id": None, "date": NINE}
    if doctor_id != "absent":
        document["doctor_id"] = doctor_id
    db.appointments.insert_one(document)
    patient_id = add_patient()
    forbidden = (403, {"success": False, "error": "Doctor does not own this appointment"})

    responses = [
        read(client, appointment_id),
        client.post("/patients/add_and_link?uid=doctor_a", json=jane(str(appointment_id)), headers=bearer()),
        client.put(f"/appointments/{appointment_id}/patient?uid=doctor_a", json={"patient_id": patient_id},
                   headers=bearer()),
        client.delete(f"/appointments/{appointment_id}/patient?uid=doctor_a", headers=bearer()),
    ]

    assert [(response.status_code, response.get_json()) for response in responses] == [forbidden] * 4
    assert db.appointments.find_one({"_id": appointment_id}) == document
    assert db.patients.count_documents({}) == 1  # add_and_link's patient is not kept on a 403
    assert listing(client).get_json()["data"] == []


def every_page(client, after=None, **params):
    """Follow `next` from the first page (or the one after a cursor) to the last; return every item seen, in order."""
    seen, cursor = [], after
    while True:
        response = listing(client, **params, **({"after": cursor} if cursor else {}))
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        seen += body["data"]
        cursor = body["next"]
        if cursor is None:
            return seen


@pytest.mark.parametrize("shape", SHAPES)
def test_a_list_with_one_scheduler_record_among_the_services_own_shows_them_all(client, db, shape):
    own = [client.post("/appointments?uid=doctor_a", json={"date": f"2026-11-2{day}T09:00:00Z", "reason": "Visit"},
                       headers=bearer()).get_json()["data"] for day in (1, 2)]
    odd = scheduled(db, **SHAPES[shape][0])

    response = listing(client)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert [item["_id"] for item in body["data"]] == [own[0]["_id"], own[1]["_id"], odd]
    assert body["data"][:2] == own and body["next"] is None
    assert body["data"][2] == {"_id": odd, "doctor_id": "doctor_a", "patient_id": None, **SHAPES[shape][1]}


@pytest.mark.parametrize("sealed", ["text", Binary(b"\x01garbage", 0), Binary(b"\x01" + b"x" * 80, 6)],
                         ids=["text", "other bytes", "a ciphertext of no key of ours"])
def test_an_appointment_whose_sealed_field_the_scheduler_wrote_is_refused_alone(client, db, caplog, sealed):
    own = client.post("/appointments?uid=doctor_a", json={"date": "2026-11-21T09:00:00Z", "reason": "Visit"},
                      headers=bearer()).get_json()["data"]
    odd = scheduled(db, date=NINE, sealed=sealed)

    single, page = read(client, odd), listing(client)

    # Not a value the service sealed: refused like one copied from another record, and only that one.
    assert (single.status_code, single.get_json()) == (500, {"success": False,
                                                            "error": "Stored record failed its integrity check"})
    assert f"appointments {odd}" in caplog.text
    assert page.status_code == 200 and page.get_json()["data"] == [own]


def test_pages_of_one_visit_every_appointment_once_the_dated_ones_first(client, db):
    dated = [scheduled(db, date=NINE + datetime.timedelta(hours=hour), patient_id=None) for hour in (2, 0, 1)]
    tied = scheduled(db, date=NINE, patient_id=None)  # the same date as another: the id breaks the tie
    undated = [scheduled(db, **stored) for stored, _ in SHAPES.values() if not isinstance(stored.get("date"),
                                                                                            datetime.datetime)]
    scheduled(db, doctor_id="doctor_b", date="2026-12-01T09:00:00Z")  # never seen by doctor_a
    scheduled(db, doctor_id="doctor_b", date=NINE)

    first = listing(client, limit=1).get_json()
    late = scheduled(db, date="2026-12-02")  # added while paging: after every id seen, so shown at the end
    seen = first["data"] + every_page(client, limit=1, after=first["next"])

    ids = [item["_id"] for item in seen]
    assert ids == [dated[1], tied, dated[2], dated[0], *sorted(undated), late]
    assert all(item["doctor_id"] == "doctor_a" for item in seen)


def test_a_cursor_issued_before_undated_records_existed_still_leads_to_them(client, db):
    first, last = (client.post("/appointments?uid=doctor_a", json={"date": f"2026-12-0{day}T09:00:00Z"},
                               headers=bearer()).get_json()["data"]["_id"] for day in (1, 2))
    page = listing(client, limit=1).get_json()
    assert page["data"][0]["_id"] == first and page["next"].endswith("_" + first)

    undated = scheduled(db, date="2026-12-03T09:00:00Z")

    assert [item["_id"] for item in every_page(client, limit=1, after=page["next"])] == [last, undated]


@pytest.mark.parametrize("limit", [1, 2, 3, 50])
def test_linked_filters_treat_an_absent_patient_id_as_free_across_pages(client, db, limit):
    patient = ObjectId()
    free = [scheduled(db, date=NINE), scheduled(db, date="2026-12-01T10:00:00Z"), scheduled(db, date=NINE,
                                                                                            patient_id=None)]
    taken = [scheduled(db, date=NINE, patient_id=patient), scheduled(db, patient_id=patient)]

    unlinked = every_page(client, limit=limit, linked="false")
    linked = every_page(client, limit=limit, linked="true")

    assert sorted(item["_id"] for item in unlinked) == sorted(free)
    assert all(item["patient_id"] is None for item in unlinked)
    assert [item["_id"] for item in linked] == taken
    assert all(item["patient_id"] == str(patient) for item in linked)


def test_an_appointment_whose_id_is_not_an_object_id_is_left_out_of_lists(client, db):
    own = client.post("/appointments?uid=doctor_a", json={"date": "2026-12-01T09:00:00Z"},
                      headers=bearer()).get_json()["data"]["_id"]
    db.appointments.insert_many([{"_id": "sched-1", "doctor_id": "doctor_a", "date": NINE},
                                 {"_id": 17, "doctor_id": "doctor_a", "date": "2026-12-01"}])

    assert [item["_id"] for item in every_page(client, limit=1)] == [own]


def test_a_cursor_into_the_undated_part_is_an_empty_page_of_lists_that_have_none(client, db):
    patient = client.post("/patients/add_and_link?uid=doctor_a", json=jane(scheduled(db, date=NINE)),
                          headers=bearer()).get_json()["data"]
    cursor = str(ObjectId())

    for path in ("/patients", "/audit"):
        response = client.get(f"{path}?uid=doctor_a&after={cursor}", headers=bearer())
        assert (response.status_code, response.get_json()) == (200, {"success": True, "data": [], "next": None})
    history = client.get(f"/patients/{patient['_id']}/history?uid=doctor_a&after={cursor}", headers=bearer())
    assert (history.status_code, history.get_json()) == (200, {"success": True, "data": [], "next": None})


def strict_json(response):
    """Return a response's body parsed as strict JSON, where NaN and Infinity are not values."""
    return json.loads(response.data, parse_constant=lambda constant: pytest.fail(f"{constant} is not JSON"))


# Any value BSON holds, at some depth: JSON's own, moments, and the types JSON has no word for.
bson_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.integers(-2**63, 2**63 - 1).map(Int64)
    | st.floats() | st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
    | st.datetimes(timezones=st.just(UTC)).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000
                                                                              * 1000))
    | st.builds(ObjectId) | st.binary(max_size=3)
    | st.sampled_from([Decimal128("1.5"), Decimal128("NaN"), Timestamp(1, 2), MinKey(), MaxKey(), Regex("^a")]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text("abc", min_size=1, max_size=3),
                                                                      children, max_size=3),
    max_leaves=6,
)
scheduler_documents = st.fixed_dictionaries(
    {"doctor_id": st.just("mine") | st.just("mine") | bson_values},
    optional={"date": bson_values, "reason": bson_values, "patient_id": bson_values, "room": bson_values})


@pytest.mark.parametrize("backend", ["mongomock", "replica_set"], indirect=True)
@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(documents=st.lists(scheduler_documents, min_size=1, max_size=5), limit=st.integers(1, 3))
def test_whatever_the_scheduler_stored_reads_and_lists_without_a_500(client, db, documents, limit):
    uid = "doctor_" + uuid.uuid4().hex[:8]  # one doctor per example: the examples share the database
    documents = [{**document, "_id": ObjectId(),
                  "doctor_id": uid if document["doctor_id"] == "mine" else document["doctor_id"]}
                 for document in documents]
    db.appointments.insert_many([*documents, {"_id": ObjectId(), "doctor_id": uid, "patient_id": None, "date": NINE}])
    theirs = {str(document["_id"]) for document in db.appointments.find({"doctor_id": uid})
              if document["doctor_id"] == uid}

    for document in documents:
        response = client.get(f"/appointments/{document['_id']}?uid={uid}", headers=bearer(uid))
        assert response.status_code == (200 if str(document["_id"]) in theirs else 403), strict_json(response)
        data = strict_json(response).get("data", {})
        assert set(data) <= {"_id", "doctor_id", "patient_id", "date", "reason"}

    seen, cursor = [], None
    while True:
        query = f"uid={uid}&limit={limit}" + (f"&after={cursor}" if cursor else "")
        response = client.get(f"/appointments?{query}", headers=bearer(uid))
        assert response.status_code == 200, strict_json(response)
        body = strict_json(response)
        seen += [item["_id"] for item in body["data"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(theirs)
