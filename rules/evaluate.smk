# rules for stage: evaluate (to be filled)
