"""``python -m fcconv.slides notebooks/0*.ipynb [--reset]``: give the walkthroughs slide metadata.

The code lives with the course machinery (``fcconv.course.slides``); this entry point keeps the
command instructors know.
"""

import sys

from .course.slides import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
