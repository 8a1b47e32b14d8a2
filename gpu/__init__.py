"""CUDA kernels for longformer-lab, through CuPy: the `cupy` backend of refimpl/backends.py.

gpu/kernels/*.cu hold the kernels (each opens with what it computes, its shapes, launch geometry and versions),
gpu/loader.py compiles them with NVRTC, gpu/backend.py launches them. Importing this package needs no CuPy:
CuPy is imported inside functions, so `unavailable_reason()` can say why the backend cannot run here.
"""
