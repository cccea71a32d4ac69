"""The clinic's business steps, their refusals and the rules patient data must follow; calls the store only."""
