"""talkGPT4All: a local voice chat loop for the terminal."""

import os

__version__ = "0.1.0"

# numpy's OpenBLAS starts a thread per core, and after each call its threads spin, waiting for more
# work. Our numpy work is small (Whisper's mel filters, Smart Turn's features, VAD windows), but the
# spinning took the 2 cores of a laptop-class machine from the Whisper encoder and llama.cpp that ran
# next: hands-free, speech to text took 0.28-0.37 s instead of 0.20-0.26 s. One BLAS thread costs
# nothing measurable. It must be set before numpy loads; a user's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
