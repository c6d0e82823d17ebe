"""The decisions: ranging, filters, the detectors (occupancy, flood, air),
the core that feeds them and the payloads it publishes. No hardware,
network or file: the same on a board and on the desk."""
