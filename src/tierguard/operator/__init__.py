"""tierguard.operator."""
