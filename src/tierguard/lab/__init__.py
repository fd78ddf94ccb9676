"""tierguard.lab."""
