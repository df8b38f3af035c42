"""Catalogue: records, items (copies), ISBN intake, MARC exchange, search."""
