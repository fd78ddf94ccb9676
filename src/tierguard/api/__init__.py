"""tierguard.api."""
