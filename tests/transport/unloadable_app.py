"""An app module that exits while a worker imports it, as wsgi.py does on a setting only create_app refuses."""
raise SystemExit(1)
