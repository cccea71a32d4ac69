"""`make bench`: POST /patients/add_and_link measured against the database's floor and the web stack's ceiling."""
