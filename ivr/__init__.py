"""The IVR's voice: prompt catalogue (``prompts.json``), Hindi/English numbers, prompt builder.

``ivr.numbers`` turns numbers into prompt ids (pure, used at call time); ``ivr.catalogue``
loads the texts; ``ivr.prompts`` renders them to Asterisk-ready audio (build time only).
"""
