"""Pure rules of the helpline (no I/O): complaint numbers and states, caller numbers, SLA."""
