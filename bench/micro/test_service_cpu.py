"""What the service's own steps of one add_and_link cost in CPU, each alone: `make microbench` (pytest-benchmark).

Not collected by `make test` (pytest.ini's testpaths is tests/). Compare with the CPU ms per request of
`make bench`, which also counts the web stack, the driver and the database round trips.
"""
import copy
import datetime

import mongomock
import pytest
from bson import ObjectId

from app import create_app
from app.http import answers
from app.http.auth import TokenVerifier
from app.http.routes.patients import ADD_AND_LINK_EXAMPLE
from app.service import schemas
from app.store.records import INTERNAL_PATIENT_FIELDS
from tests.conftest import make_config, make_token

DOCTOR = "doctor_a"


@pytest.fixture(scope="module")
def app():
    """The service over mongomock, with field encryption on under the tests' master key."""
    return create_app(make_config(MONGO_CLIENT=mongomock.MongoClient(tz_aware=True), MONGODB_DB="x"))


@pytest.fixture(scope="module")
def values(app):
    """How the service stores patient values: sealed."""
    return app.extensions["clinic.db"].values


@pytest.fixture
def fields():
    """A patient's own fields, as add_and_link's body gives them once loaded."""
    loaded = schemas.add_and_link_request.load(copy.deepcopy(ADD_AND_LINK_EXAMPLE))
    loaded.pop("appointment_id")
    return loaded


@pytest.fixture
def patient(fields):
    """The patient add_and_link answers with, as the service steps return it."""
    moment = datetime.datetime.now(datetime.timezone.utc)
    return {"_id": "6b07a1b2c3d4e5f678901234", "doctor_id": DOCTOR, **fields, "version": 1, "updated_at": moment,
            "updated_by": DOCTOR}


def test_load_the_add_and_link_body(benchmark):
    benchmark(schemas.add_and_link_request.load, ADD_AND_LINK_EXAMPLE)


def test_dump_a_patient(benchmark, patient):
    benchmark(schemas.patient_view.dump, patient)


def test_verify_an_hs256_token(benchmark):
    verifier, header = TokenVerifier(make_config()), "Bearer " + make_token(DOCTOR)
    assert benchmark(verifier.verify, header).subject == DOCTOR


def test_seal_a_patient_and_its_blind_indexes(benchmark, values, fields):
    stored = benchmark(values.patient, ObjectId(), DOCTOR, fields)
    assert set(stored) == {"sealed", "bound", "found_by"}


def test_unseal_a_patient(benchmark, values, fields):
    patient_id = ObjectId()
    stored = {"_id": patient_id, "doctor_id": DOCTOR, **values.patient(patient_id, DOCTOR, fields)}
    assert benchmark(values.patient_fields, stored, INTERNAL_PATIENT_FIELDS) == fields


def test_shape_the_201_answer(benchmark, app, patient):
    with app.test_request_context():
        sent = benchmark(lambda: answers.response(answers.patient_created(patient)))
    assert sent.status_code == 201 and sent.headers["ETag"] and sent.headers["Location"]
