"""Example handlers: the package `queues.yml` names (`app.orders.handle`). Replace with your own."""
