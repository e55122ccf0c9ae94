"""Queue, seat and agent state from AMI: the one writer of calls, queue events and seat status."""
