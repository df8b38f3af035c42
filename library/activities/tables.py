"""Tables of the activities domain; it grows with its own issue."""
