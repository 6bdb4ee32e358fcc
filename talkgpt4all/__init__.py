"""talkGPT4All: a local voice chat loop for the terminal."""

__version__ = "0.1.0"
