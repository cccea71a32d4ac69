"""`make bench`: the service against a plain add_and_link (run.py, plain_app.py); `make microbench` (micro/)."""
