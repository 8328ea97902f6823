# rules for stage: babel (to be filled)
