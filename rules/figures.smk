# rules for stage: figures (to be filled)
