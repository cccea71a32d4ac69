"""Operator commands on the service's database: `flask --app wsgi encrypt-existing` and `rotate-master-key`."""
import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from app.store.db import ClinicDatabase
from app.store.encrypt_existing import bind_existing, encrypt_existing, still_plain, still_unbound
from app.store.key_rotation import rotate_master_key
from app.store.sealing import SealedValues
from config import ConfigError, master_key_from_env


def register(app: Flask) -> None:
    """Add the operator commands to the app's `flask` command line."""
    app.cli.add_command(encrypt_existing_command)
    app.cli.add_command(rotate_master_key_command)


def _database() -> ClinicDatabase:
    """Return the service's database, prepared (so its data key is open) or failing with one line."""
    database = current_app.extensions["clinic.db"]
    database.prepare()
    return database


@click.command("encrypt-existing")
@with_appcontext
def encrypt_existing_command() -> None:
    """Encrypt in place the patient values stored before field encryption, and bind older ones to their records."""
    database = _database()
    if database.master_key is None:
        raise click.ClickException("FIELD_ENCRYPTION=off: there is no key to encrypt with")
    values = database.values
    assert isinstance(values, SealedValues)  # prepared with a master key, it seals
    sealed = encrypt_existing(database.db, values)
    bound = bind_existing(database.db, values)
    click.echo("encrypted " + ", ".join(f"{count} {name}" for name, count in sealed.items()))
    click.echo("bound to their records " + ", ".join(f"{count} {name}" for name, count in bound.items()))
    # Only documents changed while this ran are left; each change stored them sealed and bound already, or a rerun will.
    left = still_plain(database.db)
    if any(left.values()):
        raise click.ClickException("still plain: " + ", ".join(f"{count} {name}" for name, count in left.items())
                                   + "; run it again")
    unbound = still_unbound(database.db)
    if any(unbound.values()):
        raise click.ClickException("still unbound: " + ", ".join(f"{count} {name}" for name, count in unbound.items())
                                   + "; run it again")
    click.echo("no plain patient values are left, and every encrypted one is bound to its record")


@click.command("rotate-master-key")
@with_appcontext
def rotate_master_key_command() -> None:
    """Rewrap the data key from the configured master key to NEW_FIELD_ENCRYPTION_KEY (or NEW_..._KMS_*)."""
    try:
        new = master_key_from_env("NEW_")
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    if new is None:
        raise click.ClickException("set NEW_FIELD_ENCRYPTION_KEY (or NEW_FIELD_ENCRYPTION_KMS_PROVIDER and "
                                   "NEW_FIELD_ENCRYPTION_MASTER_KEY) to the master key to rotate to")
    database = _database()
    if database.master_key is None:
        raise click.ClickException("FIELD_ENCRYPTION=off: there is no master key to rotate from")
    try:
        count = rotate_master_key(database.db, database.key_vault_client, database.master_key, new)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"rewrapped {count} data key(s) under {new.provider}; start the service with the new master key, "
               "then retire the old one")
