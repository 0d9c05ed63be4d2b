"""fastpg: policy-gradient Pong from pixels, with Cython kernels and a numpy reference."""
__version__ = "0.25.0"
