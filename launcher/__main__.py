"""``python -m launcher`` is ``ma-launch``."""

from launcher.cli import main

main()
