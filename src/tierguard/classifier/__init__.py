"""tierguard.classifier."""
