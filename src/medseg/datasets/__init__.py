"""Dataset layouts, class maps and group-aware splits."""
