# rules for stage: polarbear (to be filled)
