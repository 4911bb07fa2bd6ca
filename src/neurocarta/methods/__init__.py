"""The three maps' methods: pure numpy/scipy computations on arrays, never importing torch."""
