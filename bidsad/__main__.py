"""``python -m bidsad`` entry point."""

from bidsad.cli.run import main

if __name__ == "__main__":
    main()
