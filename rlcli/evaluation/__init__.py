"""rlcli.evaluation"""
