"""The runbook's disaster-recovery scenarios, one module each."""
