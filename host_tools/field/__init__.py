"""Host tools for the field: board profiles, flashing, provisioning, the
one board transport, recording a bench board, watching a fleet."""
