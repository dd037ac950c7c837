"""``python -m hookbay_cli``: the same as the ``hookbay`` script."""

from hookbay_cli.main import main

main()
