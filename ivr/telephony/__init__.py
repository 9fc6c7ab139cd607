"""The wire: FastAGI, AMI, AudioSocket and the TCP listener they share.

One module per protocol; quirks are handled where the protocol is parsed. Knows nothing of
flows, routing or the web: imports only the standard library, its own modules and ``ivr.config``.
"""
