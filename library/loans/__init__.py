"""Circulation: policies, checkout, return anywhere, renewals, holds, notices."""
