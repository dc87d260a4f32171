"""Many runs: grids and replicated sweeps (``sweep``), Optuna searches (``search``), Slurm launches
(``launch``), equal-wall-clock costs (``costs``), the statistics (``stats``), the thesis's four
claims (``claims``), the report that states them (``report``), the long-run check of a study's
cells (``longrun``) and the leaderboard (``leaderboard``).
"""
