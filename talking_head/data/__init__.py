"""Training data: one on-disk format (``format.py``) written by the synthetic generator and by the
preprocessing of real talking videos alike, so nothing downstream branches on where data came from."""
