"""rlcli.envs"""
