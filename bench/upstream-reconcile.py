"""make bench item 4: upstream's own boot reconciler, what hermes-s6's
`reconcile` replaces: hermes-agent 0.19.0's
hermes_cli.container_boot.reconcile_profile_gateways on the same tree.

usage: python upstream-reconcile.py HERMES_HOME SCANDIR
(run with the hermes-agent venv's python; container_argv=() so it reads no
/proc, as in a container whose main command is not `gateway run`)."""
import sys
from pathlib import Path

from hermes_cli.container_boot import reconcile_profile_gateways

reconcile_profile_gateways(
    hermes_home=Path(sys.argv[1]), scandir=Path(sys.argv[2]), container_argv=()
)
