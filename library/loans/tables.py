"""Tables of the loans domain; it grows with its own issue."""
