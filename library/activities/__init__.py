"""Activities: events, occurrences, room bookings, registrations, reading challenge."""
