#!/usr/bin/env python3
"""talkGPT4All: press Enter, speak, and hear a local LLM answer. See README.md."""

import sys

from talkgpt4all.cli import main

if __name__ == "__main__":
    sys.exit(main())
