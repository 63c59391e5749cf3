"""Orchestration of a classification job: preprocessing, progress, MPI, the checks before a
job writes (``jobcheck``), run_job."""
