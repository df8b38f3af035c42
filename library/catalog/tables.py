"""Tables of the catalog domain; it grows with its own issue."""
