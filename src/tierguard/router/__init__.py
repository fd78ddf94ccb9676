"""tierguard.router."""
