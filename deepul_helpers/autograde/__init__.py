"""Release, sandboxed grading, gradebook, feedback and grades CSV."""
