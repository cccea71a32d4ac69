"""The request schemas over HTTP: any JSON value in any field is stored exactly or refused with nothing written."""
import datetime
import json

import mongomock
import pytest
from bson import ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import create_app
from app.store.records import INTERNAL_PATIENT_FIELDS
from app.store.sealing import STORAGE_FIELDS
from tests.conftest import Unsealed, bearer, jane, make_config

DOCTOR = "doctor_a"
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, database=None,
                             suppress_health_check=[HealthCheck.too_slow])

# JSON text may escape lone surrogates (`"\\ud800"`): they parse into Python strings that BSON cannot encode.
texts_with_lone_surrogates = st.builds("{}{}{}".format, st.text(max_size=3), st.characters(categories=["Cs"]),
                                       st.text(max_size=3))
# Any JSON value (floats may be infinite: Python's json reads `Infinity`, so the service must refuse it too).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | texts_with_lone_surrogates,
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=5,
)
short_text = st.text(max_size=30)
phones = st.from_regex(r"\+?[0-9]{3,20}", fullmatch=True)
iso_dates = st.dates().map(datetime.date.isoformat)

# Values that pass validation often enough for the "stored exactly" half of the property to be exercised.
PLAUSIBLE = {
    "firstName": st.text(max_size=110),
    "lastName": st.text(max_size=110),
    "dateOfBirth": iso_dates,
    "address": st.fixed_dictionaries({}, optional=dict.fromkeys(("street", "city", "state", "zipCode"), short_text)),
    "insurance": st.fixed_dictionaries({}, optional={"provider": short_text, "policyNumber": short_text}),
    "contact": st.fixed_dictionaries({}, optional={"phone": phones, "email": st.emails()}),
    "medicalHistory": st.text(),
    "currentMedications": st.text(),
    "address.street": short_text,
    "address.city": short_text,
    "address.state": short_text,
    "address.zipCode": st.text(max_size=25),
    "insurance.provider": short_text,
    "insurance.policyNumber": short_text,
    "contact.phone": phones,
    "contact.email": st.emails(),
}
TRIMMED = {"firstName", "lastName"}


@pytest.fixture(scope="module")
def service():
    """The service over a mongomock database of this module's own: its test client and the database."""
    client = mongomock.MongoClient(tz_aware=True)
    app = create_app(make_config(MONGO_CLIENT=client, MONGODB_DB="properties"))
    return app.test_client(), client["properties"]


@pytest.fixture(scope="module")
def unsealed_here(service):
    """Open what the module's service stored sealed (see tests.conftest.Unsealed)."""
    app = service[0].application
    app.extensions["clinic.db"].prepare()
    return Unsealed(app)


def free_appointment(db):
    """Insert a free appointment of the doctor straight into the database and return its id."""
    appointment_id = ObjectId()
    db.appointments.insert_one({"_id": appointment_id, "doctor_id": DOCTOR, "patient_id": None,
                                "date": datetime.datetime(2026, 12, 1, 9, tzinfo=datetime.timezone.utc)})
    return str(appointment_id)


def exactly(value):
    """Return a JSON value as text in which 1, 1.0 and true differ, to compare what was stored with what was sent."""
    return json.dumps(value, sort_keys=True)


def post_json(http, url, body):
    """POST body as JSON text for the doctor (serialised here, so that infinite floats go out as `Infinity`)."""
    return http.post(url, data=json.dumps(body), content_type="application/json", headers=bearer(DOCTOR))


def assert_refused_with_the_envelope(response):
    """Assert a 400 in the error envelope."""
    assert response.status_code == 400, (response.status_code, response.get_data(as_text=True))
    body = response.get_json()
    assert body["success"] is False and isinstance(body["error"], str) and body["error"], body
    assert "data" not in body, body


@pytest.mark.parametrize("path", list(PLAUSIBLE))
@PROPERTY_SETTINGS
@given(data=st.data())
def test_any_value_in_a_patient_field_is_stored_exactly_or_refused_with_nothing_written(service, unsealed_here, path,
                                                                                         data):
    http, db = service
    value = data.draw(json_values | PLAUSIBLE[path], label=path)
    appointment_id = free_appointment(db)
    body = jane(appointment_id)
    parent, _, child = path.partition(".")
    body[parent] = {**body[parent], child: value} if child else value
    patients_before = db.patients.count_documents({})

    response = post_json(http, "/patients/add_and_link?uid=doctor_a", body)

    appointment = db.appointments.find_one({"_id": ObjectId(appointment_id)})
    if response.status_code == 201:
        expected = {key: item for key, item in body.items() if key != "appointment_id"}
        for name in TRIMMED:
            expected[name] = expected[name].strip()
        data_sent_back = response.get_json()["data"]
        assert exactly(data_sent_back) == exactly({"_id": data_sent_back["_id"], "doctor_id": DOCTOR, **expected})
        raw = db.patients.find_one({"_id": ObjectId(data_sent_back["_id"])})
        # Nothing but ids, times, version and the sealed value with its blind indexes: no plain copy of a field.
        assert set(raw) - set(INTERNAL_PATIENT_FIELDS) <= set(STORAGE_FIELDS), sorted(raw)
        stored = unsealed_here.patient(raw)
        stored_fields = {key: item for key, item in stored.items() if key not in INTERNAL_PATIENT_FIELDS}
        assert exactly(stored_fields) == exactly(expected)
        assert db.patients.count_documents({}) == patients_before + 1
        assert appointment["patient_id"] == stored["_id"]
    else:
        assert_refused_with_the_envelope(response)
        assert db.patients.count_documents({}) == patients_before
        assert appointment["patient_id"] is None


def offsets():
    """Return a strategy for fixed UTC offsets, whole minutes within a day either way."""
    return st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
        lambda minutes: datetime.timezone(datetime.timedelta(minutes=minutes)))


# Aware datetimes anywhere, and at the ends of the calendar where a local time's UTC may fall outside it.
aware_datetimes = (st.datetimes(timezones=offsets())
                   | st.datetimes(max_value=datetime.datetime(1, 1, 2), timezones=offsets())
                   | st.datetimes(min_value=datetime.datetime(9999, 12, 30), timezones=offsets()))
# A date is sent either as some JSON value or as an aware datetime written in ISO 8601 (kept to compute the expected).
appointment_dates = (json_values.map(lambda value: (value, None))
                     | aware_datetimes.map(lambda moment: (moment.isoformat(), moment)))
reasons = json_values | st.text(max_size=520)


@PROPERTY_SETTINGS
@given(date=appointment_dates, reason=reasons)
def test_any_appointment_date_and_reason_is_stored_exactly_or_refused_with_nothing_written(service, unsealed_here,
                                                                                            date, reason):
    http, db = service
    sent_date, moment = date
    appointments_before = db.appointments.count_documents({})

    response = post_json(http, "/appointments?uid=doctor_a", {"date": sent_date, "reason": reason})

    if response.status_code == 201:
        data_sent_back = response.get_json()["data"]
        raw = db.appointments.find_one({"_id": ObjectId(data_sent_back["_id"])})
        assert "reason" not in raw  # sealed: only the date stays plain
        stored = unsealed_here.appointment(raw)
        assert db.appointments.count_documents({}) == appointments_before + 1
        assert exactly(stored["reason"]) == exactly(reason) == exactly(data_sent_back["reason"])
        assert stored["doctor_id"] == DOCTOR and stored["patient_id"] is None
        stored_utc = stored["date"].astimezone(datetime.timezone.utc)
        shown = datetime.datetime.fromisoformat(data_sent_back["date"].replace("Z", "+00:00"))
        assert data_sent_back["date"].endswith("Z") and shown == stored_utc
        if moment is not None:
            utc = moment.astimezone(datetime.timezone.utc)
            assert stored_utc == utc.replace(microsecond=utc.microsecond // 1000 * 1000)
    else:
        assert_refused_with_the_envelope(response)
        assert db.appointments.count_documents({}) == appointments_before


@PROPERTY_SETTINGS
@given(field=st.sampled_from(["firstName", "address", "medicalHistory", "reason"]),
       depth=st.integers(min_value=1, max_value=20_000))
def test_a_body_nested_at_any_depth_is_refused_with_nothing_written(service, field, depth):
    http, db = service
    appointment_id = free_appointment(db)
    body = {"date": "2026-12-01T09:00:00Z"} if field == "reason" else jane(appointment_id)
    body[field] = "NESTED"
    # Written by hand: json.dumps itself refuses to nest this deep.
    text = json.dumps(body).replace('"NESTED"', "[" * depth + "]" * depth)
    url = "/appointments?uid=doctor_a" if field == "reason" else "/patients/add_and_link?uid=doctor_a"
    patients_before, appointments_before = db.patients.count_documents({}), db.appointments.count_documents({})

    response = http.post(url, data=text, content_type="application/json", headers=bearer(DOCTOR))

    assert_refused_with_the_envelope(response)
    assert db.patients.count_documents({}) == patients_before
    assert db.appointments.count_documents({}) == appointments_before
    assert db.appointments.find_one({"_id": ObjectId(appointment_id)})["patient_id"] is None
