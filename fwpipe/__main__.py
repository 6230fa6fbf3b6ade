"""`python -m fwpipe` is the `fwpipe` command; torchrun starts it as `torchrun ... -m fwpipe train ...`."""

from fwpipe.cli import main

if __name__ == "__main__":
    main(prog_name="fwpipe")
