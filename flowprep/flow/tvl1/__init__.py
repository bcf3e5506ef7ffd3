"""Dual TV-L1, the flow of the two-stream and TSN papers: the registry's two entries (methods.py:
`tvl1`, OpenCV's, and `tvl1-torch`), the parameters both take (params.py), the PyTorch solver of
many pairs at once (solver.py), its inner iteration as Triton kernels (kernels.py) and its
iterations as a learnable network layer (layer.py). Importing this package imports none of them:
torch only when the PyTorch ones are asked for."""
