"""A stranger's fuzzer against the real service: `schemathesis run .../openapi.json --checks all`, every phase."""
import os
import subprocess
import sys
import uuid

import pytest

from tests.conftest import SECRET, make_token
from tests.live import LiveService

DOCTOR = "doctor_a"
SCHEMATHESIS = os.path.join(os.path.dirname(sys.executable), "schemathesis")
# Four in five requests act for the token's doctor, so the fuzzer gets past the 403 to the records; the
# rest keep a generated uid. Answers the checks' default lists leave out are documented ones: an
# Idempotency-Key reused with another body is refused with 422 (no document can say which keys were used), a
# well-formed If-Match of another version than the patient's is refused with 412 (nor can it say which version
# is current), and a schema-violating request refused with 413, 414 or 431 before any route sees it is refused
# all the same.
CONFIG = f"""
[dictionaries.doctor]
values = ["{DOCTOR}"]

[parameters]
"query.uid" = {{ dictionary = "doctor", probability = 0.8 }}

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "412", "422", "429", "5xx"]

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "414", "415", "422", "428", "429",
                     "431", "5xx"]
"""


@pytest.mark.slow
@pytest.mark.realdb
@pytest.mark.timeout(300)
def test_a_strangers_fuzzer_finds_the_document_and_the_service_in_agreement(replica_set_server, tmp_path):
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    service = LiveService(tmp_path / "gunicorn.log", MONGODB_URI=replica_set_server.uri,
                          MONGODB_DB="fuzz_" + uuid.uuid4().hex[:12], JWT_SECRET=SECRET).start()
    try:
        run = subprocess.run(
            [SCHEMATHESIS, "--config-file", str(tmp_path / "schemathesis.toml"), "run",
             service.base + "/openapi.json", "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful",
             "--header", "Authorization: Bearer " + make_token(DOCTOR), "--max-examples", "60", "--seed", "20260",
             "--workers", "1", "--generation-database", "none", "--no-color"],
            cwd=tmp_path, capture_output=True, text=True, timeout=240)
    finally:
        service.stop()

    log = "\n--- service log ---\n" + service.log()[-5000:]
    assert run.returncode == 0, run.stdout[-30000:] + run.stderr[-5000:] + log
