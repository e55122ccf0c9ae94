"""The shared kernel of the helpline: settings, domain rules, database and the AGI/AMI layer.

Every service imports ``core``; ``core`` imports no service.
"""
