"""rlcli.nets"""
