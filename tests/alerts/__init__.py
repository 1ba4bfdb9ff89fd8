"""The alert truth table: scenarios as data, the stack that plays them, and its document."""
