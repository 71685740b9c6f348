"""rlcli.report"""
