"""The bundled offline snapshot of fal's catalog (built by scripts/build_snapshot.py)."""
