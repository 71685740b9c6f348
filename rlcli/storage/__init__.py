"""rlcli.storage"""
