"""`python -m fwpipe.cli` is the `fwpipe` command, as `python -m fwpipe` is."""

from fwpipe.cli import main

if __name__ == "__main__":
    main(prog_name="fwpipe")
