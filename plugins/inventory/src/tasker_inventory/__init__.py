"""tasker-inventory: the Inventory team's workflows for tasker-host (namespace ``inventory``).

The host finds this package through the ``tasker_host.plugins`` entry point, which points at
:mod:`tasker_inventory.plugin`. Importing the package has no side effects.
"""
