"""The field-encryption settings: a master key is required, read strictly, and never shown."""
import base64
import logging

import mongomock
import pytest

from app import create_app
from config import LOCAL_MASTER_KEY_BYTES, Config, ConfigError, master_key_from_env
from tests.conftest import make_config
from tests.live import MASTER_KEY_B64

VARIABLES = ("FIELD_ENCRYPTION", "FIELD_ENCRYPTION_KEY", "FIELD_ENCRYPTION_KMS_PROVIDER",
             "FIELD_ENCRYPTION_KMS_CREDENTIALS", "FIELD_ENCRYPTION_MASTER_KEY")


@pytest.fixture
def env(monkeypatch):
    """An environment with a token secret and no field-encryption settings."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JWT_SECRET", "s" * 40)
    return monkeypatch


def test_without_a_master_key_the_service_refuses_to_start_with_one_line_naming_the_variables(env):
    with pytest.raises(ConfigError) as refused:
        Config().validate()
    message = str(refused.value)
    assert "\n" not in message and "FIELD_ENCRYPTION_KEY" in message and "FIELD_ENCRYPTION=off" in message


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"k" * 32).decode(), ""])
def test_a_master_key_that_is_not_96_bytes_of_base64_is_refused_without_echoing_it(env, value):
    env.setenv("FIELD_ENCRYPTION_KEY", value)
    if value == "":
        with pytest.raises(ConfigError, match="no master key"):
            Config().validate()
        return
    with pytest.raises(ConfigError, match="FIELD_ENCRYPTION_KEY must be 96 random bytes in base64") as refused:
        Config()
    assert value not in str(refused.value)


def test_a_local_key_is_named_by_a_digest_that_gives_nothing_of_it_away(env):
    env.setenv("FIELD_ENCRYPTION_KEY", MASTER_KEY_B64)
    master = Config().validate().MASTER_KEY
    assert master.provider.startswith("local:") and len(master.provider) == len("local:") + 16
    assert master.credentials == {"key": base64.b64decode(MASTER_KEY_B64)}
    assert MASTER_KEY_B64 not in repr(master) and "key" not in repr(master).split("provider")[0]
    env.setenv("FIELD_ENCRYPTION_KEY", base64.b64encode(b"x" * LOCAL_MASTER_KEY_BYTES).decode())
    assert Config().MASTER_KEY.provider != master.provider


def test_a_kms_master_key_is_read_from_its_provider_credentials_and_key(env):
    env.setenv("FIELD_ENCRYPTION_KMS_PROVIDER", "AWS")
    env.setenv("FIELD_ENCRYPTION_MASTER_KEY", '{"region": "eu-west-1", "key": "arn:aws:kms:eu-west-1:1:key/k"}')
    master = Config().validate().MASTER_KEY
    # No credentials given: pymongo takes them from the environment (an instance role, AWS_* variables).
    assert master.kms_providers() == {"aws": {}}
    assert master.key == {"region": "eu-west-1", "key": "arn:aws:kms:eu-west-1:1:key/k"}
    env.setenv("FIELD_ENCRYPTION_KMS_CREDENTIALS", '{"accessKeyId": "AKIA", "secretAccessKey": "hidden-value"}')
    assert "hidden-value" not in repr(Config().MASTER_KEY)


@pytest.mark.parametrize("settings, message", [
    ({"FIELD_ENCRYPTION_KMS_PROVIDER": "vault"}, "must be one of aws, azure, gcp, kmip"),
    ({"FIELD_ENCRYPTION_KMS_PROVIDER": "gcp"}, "FIELD_ENCRYPTION_MASTER_KEY must name the gcp key"),
    ({"FIELD_ENCRYPTION_KMS_PROVIDER": "aws", "FIELD_ENCRYPTION_MASTER_KEY": "[1]"}, "must be a JSON object"),
    ({"FIELD_ENCRYPTION_KMS_PROVIDER": "azure", "FIELD_ENCRYPTION_MASTER_KEY": "{}",
      "FIELD_ENCRYPTION_KMS_CREDENTIALS": "secret-not-json"}, "FIELD_ENCRYPTION_KMS_CREDENTIALS must be a JSON object"),
    ({"FIELD_ENCRYPTION_KMS_PROVIDER": "aws", "FIELD_ENCRYPTION_KEY": MASTER_KEY_B64}, "not both"),
    ({"FIELD_ENCRYPTION": "maybe"}, "FIELD_ENCRYPTION must be on or off"),
])
def test_malformed_kms_settings_are_refused_naming_the_variable(env, settings, message):
    for name, value in settings.items():
        env.setenv(name, value)
    with pytest.raises(ConfigError, match=message) as refused:
        Config().validate()
    assert "secret-not-json" not in str(refused.value)


def test_a_rotation_target_is_read_from_the_new_variables(env):
    assert master_key_from_env("NEW_") is None
    env.setenv("NEW_FIELD_ENCRYPTION_KEY", MASTER_KEY_B64)
    assert master_key_from_env("NEW_").provider.startswith("local:")


def test_encryption_off_starts_with_a_warning_and_stores_values_as_given(env, caplog):
    env.setenv("FIELD_ENCRYPTION", "off")
    config = Config().validate()
    assert config.FIELD_ENCRYPTION is False and config.MASTER_KEY is None
    client = mongomock.MongoClient(tz_aware=True)
    with caplog.at_level(logging.WARNING, logger="clinic"):
        app = create_app(make_config(MONGO_CLIENT=client, MONGODB_DB="off", FIELD_ENCRYPTION=False, MASTER_KEY=None))
    assert any("FIELD_ENCRYPTION=off" in record.getMessage() and record.levelno == logging.WARNING
               for record in caplog.records)
    assert app.extensions["clinic.db"].values.__class__.__name__ == "PlainValues"
