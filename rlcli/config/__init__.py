"""rlcli.config"""
