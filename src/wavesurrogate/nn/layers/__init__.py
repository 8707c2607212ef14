"""Building blocks of the networks: layers whose kernels may be factorised, activations, norms, MLP."""
