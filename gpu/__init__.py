"""CUDA kernels for longformer-lab, through CuPy: the `cupy` backend of refimpl/backends.

gpu/kernels/*.cu hold the kernels (each opens with what it computes, its shapes, launch geometry and versions) and
common.cuh what they share; gpu/kernel_constants.py reads common.cuh's constants for Python; gpu/loader.py builds
the modules (NVRTC through cupy.RawModule), gpu/backend.py launches them. gpu/cpu_runtime runs the same .cu files
on the CPU, for the tests only. Importing this package needs no CuPy: CuPy is imported inside functions, so
`unavailable_reason()` can say why the backend cannot run here.
"""
