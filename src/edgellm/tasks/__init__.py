"""Task types, dataset files and answer extraction."""
