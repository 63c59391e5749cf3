"""Orchestration of a classification job: preprocessing, progress, MPI, run_job."""
