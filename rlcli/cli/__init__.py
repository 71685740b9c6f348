"""rlcli.cli"""
