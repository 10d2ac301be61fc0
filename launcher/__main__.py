"""``python -m launcher`` is ``ma-launch``."""

from launcher.cli.main import main

main()
