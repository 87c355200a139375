"""The catalog's software-defined assets, in lineage order."""
