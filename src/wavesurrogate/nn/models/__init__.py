"""Registered models, one module per family; the registry imports every module here (no list to maintain)."""
