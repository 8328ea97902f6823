"""Select the best BABEL grid point per task (rule select_babel): validation statistic of each task."""
from workflow_lib.babel import select_babel

sm = snakemake  # noqa: F821
select_babel(list(sm.input.configs), sm.output[0], log_path=sm.log[0])
