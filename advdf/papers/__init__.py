"""Each source paper's reproduction: its plan, table layout, paper values and findings (nothing generic imports them)."""
