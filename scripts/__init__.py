"""The scripts make runs; a package only so that the tests and the bench can import scripts.embedded_db."""
