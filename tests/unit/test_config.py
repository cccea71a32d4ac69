"""Configuration from the environment, and the refusal to start without key material."""
import pytest

from config import DEFAULT_WORKERS, Config, ConfigError, gunicorn_workers


def test_defaults_let_a_developer_run(monkeypatch):
    for name in ("MONGODB_URI", "MONGODB_DB", "MONGODB_TIMEOUT_MS", "JWT_ADMIN_ROLE"):
        monkeypatch.delenv(name, raising=False)
    config = Config()
    assert (config.MONGODB_URI, config.MONGODB_DB, config.MONGODB_TIMEOUT_MS, config.JWT_ADMIN_ROLE) == (
        "mongodb://localhost:27017", "clinic", 5000, "admin")


def test_no_key_material_refuses_to_start_naming_the_variables(monkeypatch):
    for name in ("JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_JWKS_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="JWT_SECRET") as refused:
        Config().validate()
    assert "\n" not in str(refused.value)


def test_a_malformed_timeout_is_refused(monkeypatch):
    monkeypatch.setenv("MONGODB_TIMEOUT_MS", "soon")
    with pytest.raises(ConfigError, match="MONGODB_TIMEOUT_MS"):
        Config()


def test_a_public_key_that_is_not_an_rsa_pem_refuses_to_start():
    from app.http.auth import TokenVerifier
    from tests.conftest import make_config

    with pytest.raises(ConfigError, match="JWT_PUBLIC_KEY"):
        TokenVerifier(make_config(JWT_SECRET=None, JWT_PUBLIC_KEY="-----BEGIN PUBLIC KEY-----\nnot a key\n"))


def test_a_secret_shorter_than_32_bytes_is_refused_naming_the_variable():
    from tests.conftest import make_config

    with pytest.raises(ConfigError, match="JWT_SECRET must be at least 32 bytes"):
        make_config(JWT_SECRET="x" * 31).validate()
    assert make_config(JWT_SECRET="x" * 32).validate()


def test_a_public_key_that_is_not_an_rsa_pem_is_refused_by_validate():
    from tests.conftest import make_config

    with pytest.raises(ConfigError, match="JWT_PUBLIC_KEY"):
        make_config(JWT_SECRET=None, JWT_PUBLIC_KEY="-----BEGIN PUBLIC KEY-----\nnot a key\n").validate()


def test_the_log_format_is_text_by_default_and_json_in_any_case(monkeypatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    assert Config().LOG_FORMAT == "text"
    monkeypatch.setenv("LOG_FORMAT", " JSON ")
    assert Config().LOG_FORMAT == "json"


@pytest.mark.parametrize("raw", ["xml", "logfmt", "1"])
def test_any_other_log_format_is_refused_in_one_line_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("LOG_FORMAT", raw)
    with pytest.raises(ConfigError, match=f"LOG_FORMAT must be text or json, got '{raw}'") as refused:
        Config()
    assert "\n" not in str(refused.value)


def test_an_on_off_switch_takes_on_or_off_in_any_case_and_nothing_else(monkeypatch):
    monkeypatch.setenv("MONGODB_CLIENT_BULK_WRITE", "OFF")
    assert Config().MONGODB_CLIENT_BULK_WRITE is False
    monkeypatch.setenv("MONGODB_CLIENT_BULK_WRITE", "maybe")
    with pytest.raises(ConfigError, match="MONGODB_CLIENT_BULK_WRITE must be on or off, got 'maybe'"):
        Config()


def test_the_header_cap_is_32_kib_by_default_and_read_from_the_environment(monkeypatch):
    monkeypatch.delenv("MAX_HEADER_BYTES", raising=False)
    assert Config().MAX_HEADER_BYTES == 32 * 1024
    monkeypatch.setenv("MAX_HEADER_BYTES", "65536")
    assert Config().MAX_HEADER_BYTES == 65536


@pytest.mark.parametrize("raw", ["4095", "0", "-1"])
def test_a_header_cap_too_small_for_an_ordinary_request_is_refused_naming_the_variable(monkeypatch, raw):
    from tests.conftest import make_config

    monkeypatch.setenv("MAX_HEADER_BYTES", raw)
    with pytest.raises(ConfigError, match="MAX_HEADER_BYTES must be a whole number of bytes, at least 4096"):
        make_config().validate()
    monkeypatch.setenv("MAX_HEADER_BYTES", "4096")
    assert make_config().validate()


def test_the_body_deadline_is_ten_seconds_by_default(monkeypatch):
    monkeypatch.delenv("BODY_TIMEOUT_S", raising=False)
    assert Config().BODY_TIMEOUT_S == 10
    monkeypatch.setenv("BODY_TIMEOUT_S", "2.5")
    assert Config().BODY_TIMEOUT_S == 2.5


@pytest.mark.parametrize("raw", ["0", "-1", "nan", "inf", "soon"])
def test_a_body_deadline_that_is_not_a_positive_number_of_seconds_is_refused_in_one_line(monkeypatch, raw):
    from tests.conftest import make_config

    monkeypatch.setenv("BODY_TIMEOUT_S", raw)
    with pytest.raises(ConfigError, match="BODY_TIMEOUT_S must be a") as refused:
        make_config().validate()
    assert "\n" not in str(refused.value)


def test_an_empty_number_setting_reads_as_its_default(monkeypatch):
    for name in ("MONGODB_TIMEOUT_MS", "BODY_TIMEOUT_S", "WEB_CONCURRENCY"):
        monkeypatch.setenv(name, "")
    config = Config()
    assert (config.MONGODB_TIMEOUT_MS, config.BODY_TIMEOUT_S, gunicorn_workers()) == (5000, 10, DEFAULT_WORKERS)


@pytest.mark.parametrize("raw", ["0", "-1", "2.0", "two"])
def test_a_worker_count_that_is_not_a_positive_whole_number_is_refused_in_one_line_naming_it(monkeypatch, raw):
    monkeypatch.setenv("WEB_CONCURRENCY", raw)
    with pytest.raises(ConfigError, match=f"^WEB_CONCURRENCY must be a positive whole number, got '{raw}'$"):
        gunicorn_workers()


def test_rate_limits_are_on_by_default_with_limits_a_script_meets_and_a_clinic_does_not(monkeypatch):
    for name in ("RATE_LIMIT", "RATE_LIMIT_PER_SUBJECT", "RATE_LIMIT_PER_ADDRESS", "RATE_LIMIT_STORAGE_URI"):
        monkeypatch.delenv(name, raising=False)
    config = Config(JWT_SECRET="s" * 32, FIELD_ENCRYPTION=False).validate()
    assert (config.RATE_LIMIT, config.RATE_LIMIT_PER_SUBJECT, config.RATE_LIMIT_PER_ADDRESS,
            config.RATE_LIMIT_STORAGE_URI) == (True, "10/second;300/minute", "5/second;60/minute", None)


@pytest.mark.parametrize("name, raw", [
    ("RATE_LIMIT", "sometimes"),
    ("RATE_LIMIT_PER_SUBJECT", "lots"),
    ("RATE_LIMIT_PER_SUBJECT", "0/second"),
    ("RATE_LIMIT_PER_ADDRESS", "5/fortnight"),
    ("RATE_LIMIT_STORAGE_URI", "postgres://127.0.0.1/limits"),
    ("RATE_LIMIT_STORAGE_URI", "async+memory://"),
    ("RATE_LIMIT_STORAGE_URI", "memcached://127.0.0.1:11211"),  # its client (pymemcache) is not installed
    ("RATE_LIMIT_STORAGE_URI", "127.0.0.1:27017"),
])
def test_a_bad_rate_limit_setting_is_refused_in_one_line_naming_it(monkeypatch, name, raw):
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError, match=name) as refused:
        Config(JWT_SECRET="s" * 32, FIELD_ENCRYPTION=False).validate()
    assert "\n" not in str(refused.value)
