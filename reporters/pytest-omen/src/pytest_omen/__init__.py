"""pytest-omen: apply Omen's quarantine file to a pytest session."""

__all__ = ["QUARANTINE_VERSION"]

#: The quarantine file version this plugin reads (omen-metadata's QUARANTINE_VERSION).
QUARANTINE_VERSION = 1
