"""Many runs: grids and replicated sweeps (``sweep``), Optuna searches (``search``), Slurm launches
(``launch``), equal-wall-clock costs (``costs``), the statistics (``stats``), the report with the
thesis's claims (``report``) and the leaderboard (``leaderboard``).
"""
