"""What operators watch: backup metrics, the exporter, alert rules, backup health (``bdr status``)."""
