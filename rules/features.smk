# rules for stage: features (to be filled)
