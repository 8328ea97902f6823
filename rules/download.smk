# rules for stage: download (to be filled)
