# rules for stage: cells (to be filled)
