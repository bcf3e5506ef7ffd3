"""`twostream` (the console script, setup.cfg) and `python -m twostream`."""
from runkit.launch import launch


def main() -> None:
    launch("twostream.cli.main", "twostream")


if __name__ == "__main__":
    main()
