"""flowreg-session: variational optical-flow registration of 2-photon recordings and sessions."""

import os

# numba's OpenMP threading layer busy-waits between parallel regions by default. The solver runs
# thousands of short regions per frame, and on a node shared with other jobs (or a Snakemake run
# with several jobs per machine) the spinning threads steal the cores the work needs: measured
# here, 2 threads fell from 14 to 0.4 frames/s with one other busy process. Passive waiting costs
# nothing measurable on an idle machine. Set before numba starts its threads; a value the user
# chose is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
