"""Model building blocks: likelihoods, per-chromosome linear layers, the Polarbear VAEs and translators."""
