"""Run an operator command on the database `make run` serves: `make encrypt-existing`, `make rotate-key`."""
import os
import subprocess
import sys
from pathlib import Path

import embedded_db
from dev_secret import (
    MASTER_KEY_FILE,
    load_or_create_master_key,
    load_or_create_secret,
    new_master_key,
    replace_master_key,
)
from run_dev import MASTER_KEY_VARIABLES, embedded_db_port, fail, port_in_use, shown

ROOT = Path(__file__).resolve().parent.parent
BIN_DIR = Path(sys.executable).parent
COMMANDS = ("encrypt-existing", "rotate-master-key")


def main(command):
    """Run `flask --app wsgi <command>` with make run's settings; a rotation of the dev key also replaces its file."""
    if command not in COMMANDS:
        fail(f"unknown command {command!r}: one of {', '.join(COMMANDS)}")
    env = dict(os.environ)
    env.setdefault("JWT_SECRET", load_or_create_secret())
    own_key = not any(env.get(name) for name in MASTER_KEY_VARIABLES)
    if own_key:
        if not MASTER_KEY_FILE.exists():
            fail(f"{shown(MASTER_KEY_FILE)} not found: `make run` creates it on its first start")
        env["FIELD_ENCRYPTION_KEY"] = load_or_create_master_key()
    if not env.get("MONGODB_URI"):
        port = embedded_db_port()
        if not port_in_use(port):
            fail(f"nothing listens on 127.0.0.1:{port}: start `make run` first (its database runs with it), "
                 "or set MONGODB_URI")
        env["MONGODB_URI"] = embedded_db.uri(port)
    new_key = None
    if command == "rotate-master-key" and own_key:
        new_key = env["NEW_FIELD_ENCRYPTION_KEY"] = new_master_key()
    done = subprocess.run([str(BIN_DIR / "flask"), "--app", "wsgi", command], cwd=ROOT, env=env)
    if done.returncode != 0:
        return done.returncode
    if new_key:
        # Only now, with the data key rewrapped and opened by the new key alone, does the old key go.
        replace_master_key(new_key)
        print(f"run_dev: {shown(MASTER_KEY_FILE)} now holds the new master key; back it up again",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ""))
