"""The reliability campaign (issue 8): the whole stack under faults, bad input and load."""
