"""A render as a job and its life: the job and its result (jobs), the loop that feeds the
encoder with checkpoints and resume (render), the state folder (state), how signals stop it
(signals); and many renders: jobs files and sweeps (batch), running them here, as child
processes or on Ray (runners), and their contact sheet (sheet)."""
