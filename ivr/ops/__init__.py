"""Operations: starting and checking the stack (``ivr up/down/status/doctor``) and provisioning
secrets and Asterisk's generated configuration (``ivr setup``).
"""
