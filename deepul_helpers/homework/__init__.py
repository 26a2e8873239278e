"""Per-homework runners: load the data, run the student's function, plot, and print the
result next to the expected one. One module per homework (``hw1``, ``hw2``, ...)."""
