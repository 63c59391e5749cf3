"""Reading and writing files, at the engine's edge.

- :mod:`engine.io.atomic`     atomic writes (temporary name, fsync, rename)
- :mod:`engine.io.star`       STAR files <-> pandas tables
- :mod:`engine.io.mrc`        memory-mapped MRC stacks, atomic / chunked writers
- :mod:`engine.io.cs`         cryoSPARC ``.cs`` files as RELION tables
- :mod:`engine.io.particles`  particle sets (STAR 3.0 / 3.1+ / .cs) -> images, CTF
- :mod:`engine.io.jobfolder`  the job folder: file names and the reader
- :mod:`engine.io.job_writer` the job folder's writer (model, data, job.json, checkpoint)
- :mod:`engine.io.claim`      one command per folder (``job.lock``), a job's status now
- :mod:`engine.io.fingerprint` the run key: input fingerprint and result-changing settings
"""
