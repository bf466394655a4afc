"""Channel: the public pay page of a payment request (/pay/<code>), its status JSON and the push it sends."""
