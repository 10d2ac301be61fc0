"""ma-launch: run a command in the right conda env, the way a ModelArts training job needs it."""

__version__ = "0.1.0"
