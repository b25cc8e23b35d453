"""Lets `uv run apps/cli <command>` run the mgpt CLI straight from the workspace."""

from mgpt_cli.main import main

if __name__ == "__main__":
    main()
