"""The branch network: branches, their opening hours, closed days and rooms."""
