"""Volunteers (晨星志愿者): profiles, shifts planned by staff, sign-ups, check-in and service hours."""
