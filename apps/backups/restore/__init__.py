"""Restoring a clinic: the atomic schema swap (``swap``) and disaster recovery
from the bucket alone (``recovery``)."""
