"""Document generation (seed 000's server A)."""
