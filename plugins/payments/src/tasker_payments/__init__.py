"""tasker-payments: the Payments team's workflows for tasker-host (namespace ``payments``).

The host finds this package through the ``tasker_host.plugins`` entry point, which points at
:mod:`tasker_payments.plugin`. Importing the package has no side effects.
"""
