"""Homework runners, one module per homework (``hw1``, ``hw2``, ...), all built on ``kit``: load the
data, call and check the student's function, plot, and print the result next to the expected one.
``hw0`` is the template homework's runner (``templates/homework/``)."""
