"""rlcli.engine"""
