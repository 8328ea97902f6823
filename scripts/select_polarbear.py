"""Rule select_polarbear: the grid point of each task with the best validation score."""
from workflow_lib.fileutils import get_logger
from workflow_lib.polarbear import select_polarbear

sm = snakemake  # noqa: F821
select_polarbear(dict(zip(sm.params.points, sm.input.scores)), sm.output[0], sm.params.selection,
                 logger=get_logger(sm.log[0]))
