"""`make run`'s development master key: created once, private, kept, and replaced whole after a rotation."""
import base64
import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import dev_secret  # noqa: E402 - the launcher's own module, imported as make run imports it

from config import LOCAL_MASTER_KEY_BYTES, local_master_key  # noqa: E402


def test_the_key_is_created_once_private_and_usable_then_kept(tmp_path):
    path = tmp_path / "field_encryption_key"
    key = dev_secret.load_or_create_master_key(path)

    assert len(base64.b64decode(key, validate=True)) == LOCAL_MASTER_KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert local_master_key("FIELD_ENCRYPTION_KEY", key).provider.startswith("local:")
    assert dev_secret.load_or_create_master_key(path) == key


def test_an_emptied_key_file_is_refused_rather_than_replaced(tmp_path):
    path = tmp_path / "field_encryption_key"
    path.write_text("")
    with pytest.raises(SystemExit, match="restore it from your backup"):
        dev_secret.load_or_create_master_key(path)
    assert path.read_text() == ""


def test_a_rotated_key_replaces_the_old_one_whole_and_private(tmp_path):
    path = tmp_path / "field_encryption_key"
    old = dev_secret.load_or_create_master_key(path)
    new = dev_secret.new_master_key()
    dev_secret.replace_master_key(new, path)

    assert new != old and dev_secret.load_or_create_master_key(path) == new
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["field_encryption_key"]  # no temporary file left
