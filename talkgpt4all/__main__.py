import sys

from talkgpt4all.cli import main

sys.exit(main())
