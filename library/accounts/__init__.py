"""People: patrons (readers, with guardians acting for children) and staff."""
