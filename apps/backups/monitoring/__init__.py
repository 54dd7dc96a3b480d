"""Backup state of the fleet: the status table (``status``) and the health
endpoint (``views``)."""
