"""`flowprep` (the console script, setup.cfg) and `python -m flowprep`."""
from runkit.launch import launch


def main() -> None:
    launch("flowprep.cli.main", "flowprep")


if __name__ == "__main__":
    main()
