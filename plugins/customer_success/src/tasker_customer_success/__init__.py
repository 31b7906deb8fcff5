"""tasker-customer-success: the Customer Success team's workflows for tasker-host.

Namespace ``customer_success``. The host finds this package through the ``tasker_host.plugins``
entry point, which points at :mod:`tasker_customer_success.plugin`. Importing it has no side
effects.
"""
