"""The ``helpline`` command: brings the whole helpline up and down and runs each service."""
